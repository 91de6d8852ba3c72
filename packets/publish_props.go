package packets

import "slices"

// PublishProps holds the properties of an MQTT 5 PUBLISH (section
// 3.3.2.3): the properties a broker acts on are decoded; the others are
// kept encoded.
type PublishProps struct {
	PayloadFormat    byte
	HasPayloadFormat bool
	MessageExpiry    uint32
	HasMessageExpiry bool
	TopicAlias       uint16
	HasTopicAlias    bool
	SubscriptionIDs  []uint32 // Decode reuses the slice's backing array
	// Raw holds every other property (Content Type, Response Topic,
	// Correlation Data, User Property), validated, encoded, in wire order.
	// After Decode it aliases body, unless decoded properties sat between
	// them on the wire: then it is a new copy (Append writes the decoded
	// properties first, so what Tern encodes aliases).
	Raw []byte
}

// rawKind reports whether PublishProps keeps property id in Raw.
func rawKind(id PropID) bool {
	switch id {
	case PropContentType, PropResponseTopic, PropCorrelationData, PropUserProperty:
		return true
	}
	return false
}

// Properties returns every property of pp in the general form: the decoded
// ones, and those of Raw decoded. It fails when Raw is not a valid block of
// the Raw kinds.
func (pp *PublishProps) Properties() (Properties, error) {
	e := errs{v5: true}
	var check PublishProps
	if _, err := check.scan(decoder{t: TypePublish, b: pp.Raw, e: e, inProps: true}, true, nil); err != nil {
		return Properties{}, err
	}
	d := decoder{t: TypePublish, b: pp.Raw, e: e, inProps: true}
	p, err := d.propBlock(propCtx(TypePublish))
	if err != nil {
		return Properties{}, err
	}
	if pp.HasPayloadFormat {
		p.PayloadFormat = new(pp.PayloadFormat)
	}
	if pp.HasMessageExpiry {
		p.MessageExpiry = new(pp.MessageExpiry)
	}
	if pp.HasTopicAlias {
		p.TopicAlias = new(pp.TopicAlias)
	}
	if len(pp.SubscriptionIDs) > 0 {
		p.SubscriptionIDs = slices.Clone(pp.SubscriptionIDs)
	}
	return p, nil
}

// AppendPublishRaw appends to dst the properties of p that PublishProps
// keeps in Raw (Content Type, Response Topic, Correlation Data, User
// Property), encoded, without a Property Length: the value of a
// PublishProps.Raw. It refuses, appending nothing, any other property and
// any value a receiver of the PUBLISH would reject.
func AppendPublishRaw(dst []byte, p *Properties) ([]byte, error) {
	e := encodeErrs(Level5)
	var bad PropID
	p.each(0, func(id PropID, _ propValue) {
		if bad == 0 && !rawKind(id) {
			bad = id
		}
	})
	if bad != 0 {
		return dst, e.malformed(TypePublish, "2.2.2.2", bad.String()+" does not belong in PublishProps.Raw")
	}
	if err := p.check(TypePublish, propCtx(TypePublish)); err != nil {
		return dst, err
	}
	p.each(propCtx(TypePublish), func(id PropID, v propValue) {
		dst = v.append(append(dst, byte(id)))
	})
	return dst, nil
}
