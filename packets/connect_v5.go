package packets

// decode5 decodes the rest of an MQTT 5 CONNECT (section 3.1), whose
// protocol name and level v holds and d has read, into c.
func (c *Connect) decode5(v Connect, d *decoder) error {
	e := errs{v5: true}
	d.e = e
	flags, err := d.byte("connect flags")
	if err != nil {
		return err
	}
	if err := checkConnectFlags5(flags); err != nil {
		return err
	}
	v.CleanSession = flags&connCleanSession != 0 // Clean Start (section 3.1.2.4)
	v.WillFlag = flags&connWill != 0
	v.WillQoS = flags >> 3 & 3
	v.WillRetain = flags&connWillRetain != 0
	v.UsernameFlag = flags&connUsername != 0
	v.PasswordFlag = flags&connPassword != 0
	if v.KeepAlive, err = d.uint16("keep alive"); err != nil {
		return err
	}
	if v.Properties, err = d.props(propCtx(TypeConnect)); err != nil {
		return err
	}
	if err := v.decodePayload5(d); err != nil {
		return err
	}
	*c = v
	return nil
}

// checkConnectFlags5 applies the rules of sections 3.1.2.3 to 3.1.2.9 to
// the flags byte. A password without a user name is allowed (section
// 3.1.2.9). The reserved bit and Will QoS 3 are a Malformed Packet, as the
// specification says; Will QoS or Will Retain without the Will Flag parse,
// so they are Protocol Errors.
func checkConnectFlags5(flags byte) error {
	e := errs{v5: true}
	will, qos, retain := flags&connWill != 0, flags>>3&3, flags&connWillRetain != 0
	switch {
	case flags&connReserved != 0:
		return e.malformed(TypeConnect, "MQTT-3.1.2-3", "reserved connect flag is set")
	case qos == 3:
		return e.malformed(TypeConnect, "MQTT-3.1.2-12", "will QoS 3")
	case !will && qos != 0:
		return e.protocol(TypeConnect, "MQTT-3.1.2-11", "will QoS without the will flag")
	case !will && retain:
		return e.protocol(TypeConnect, "MQTT-3.1.2-13", "will retain without the will flag")
	}
	return nil
}

// decodePayload5 reads the payload fields in their order, each present if
// and only if its flag says so [v5 MQTT-3.1.3-1].
func (v *Connect) decodePayload5(d *decoder) error {
	e := d.e
	present := func(rule, field string) error {
		if len(d.b) == 0 {
			return e.malformed(TypeConnect, rule, field+" is missing")
		}
		return nil
	}
	// The client identifier is always present, first [v5 MQTT-3.1.3-3],
	// and a UTF-8 string [v5 MQTT-3.1.3-4].
	if err := present("MQTT-3.1.3-3", "client identifier"); err != nil {
		return err
	}
	id, err := d.str("client identifier", text)
	if err != nil {
		return err
	}
	v.ClientID = string(id)
	if v.WillFlag {
		// The Will Properties, Will Topic and Will Payload follow
		// [v5 MQTT-3.1.2-9]; the will topic is a topic name [v5
		// MQTT-3.1.3-11, MQTT-4.7.3-1, MQTT-4.7.0-1].
		if err := present("MQTT-3.1.2-9", "will properties"); err != nil {
			return err
		}
		if v.WillProperties, err = d.props(ctxWill); err != nil {
			return err
		}
		if err := present("MQTT-3.1.2-9", "will topic"); err != nil {
			return err
		}
		topic, err := d.str("will topic", topicName)
		if err != nil {
			return err
		}
		if err := present("MQTT-3.1.2-9", "will payload"); err != nil {
			return err
		}
		msg, err := d.binary("will payload")
		if err != nil {
			return err
		}
		v.WillTopic, v.WillMessage = string(topic), copyBytes(msg)
	}
	if v.UsernameFlag {
		if err := present("MQTT-3.1.2-17", "user name"); err != nil {
			return err
		}
		name, err := d.str("user name", text) // [v5 MQTT-3.1.3-12]
		if err != nil {
			return err
		}
		v.Username = string(name)
	}
	if v.PasswordFlag {
		if err := present("MQTT-3.1.2-19", "password"); err != nil {
			return err
		}
		pw, err := d.binary("password")
		if err != nil {
			return err
		}
		v.Password = copyBytes(pw)
	}
	// Nothing may follow the last field the flags announce: bytes there
	// are a field the flags say is absent.
	switch {
	case v.PasswordFlag:
		return d.end("2.1.4")
	case v.UsernameFlag:
		return d.end("MQTT-3.1.2-18")
	}
	return d.end("MQTT-3.1.2-16")
}

// append5 is Append for the MQTT 5 CONNECT.
func (c *Connect) append5(dst []byte) ([]byte, error) {
	if err := c.check5(); err != nil {
		return dst, err
	}
	n := 2 + len(name311) + 1 + 1 + 2 + c.Properties.Len(TypeConnect) + 2 + len(c.ClientID)
	flags := byte(0)
	if c.CleanSession {
		flags |= connCleanSession
	}
	if c.WillFlag {
		n += c.WillProperties.blockLen(ctxWill) + 2 + len(c.WillTopic) + 2 + len(c.WillMessage)
		flags |= connWill | c.WillQoS<<3
		if c.WillRetain {
			flags |= connWillRetain
		}
	}
	if c.UsernameFlag {
		n += 2 + len(c.Username)
		flags |= connUsername
	}
	if c.PasswordFlag {
		n += 2 + len(c.Password)
		flags |= connPassword
	}
	if err := checkRemainingV(encodeErrs(Level5), TypeConnect, n); err != nil {
		return dst, err
	}
	dst = appendFixedHeader(dst, TypeConnect, 0, n)
	dst = appendString(dst, name311)
	dst = append(dst, Level5, flags)
	dst = appendUint16(dst, c.KeepAlive)
	dst = c.Properties.appendProps(dst, propCtx(TypeConnect))
	dst = appendString(dst, c.ClientID)
	if c.WillFlag {
		dst = c.WillProperties.appendProps(dst, ctxWill)
		dst = appendString(dst, c.WillTopic)
		dst = appendBinary(dst, c.WillMessage)
	}
	if c.UsernameFlag {
		dst = appendString(dst, c.Username)
	}
	if c.PasswordFlag {
		dst = appendBinary(dst, c.Password)
	}
	return dst, nil
}

// check5 refuses an MQTT 5 CONNECT that a server would reject.
func (c *Connect) check5() error {
	e := encodeErrs(Level5)
	t := TypeConnect
	switch {
	case c.WillQoS > 2:
		return e.malformed(t, "MQTT-3.1.2-12", "will QoS above 2")
	case !c.WillFlag && c.WillQoS != 0:
		return e.protocol(t, "MQTT-3.1.2-11", "will QoS without the will flag")
	case !c.WillFlag && c.WillRetain:
		return e.protocol(t, "MQTT-3.1.2-13", "will retain without the will flag")
	case !c.WillFlag && (c.WillTopic != "" || len(c.WillMessage) != 0 || !c.WillProperties.empty()):
		return e.malformed(t, "3.1.2.5", "will topic, payload or properties without the will flag")
	case !c.UsernameFlag && c.Username != "":
		return e.malformed(t, "MQTT-3.1.2-16", "user name without the user name flag")
	case !c.PasswordFlag && len(c.Password) != 0:
		return e.malformed(t, "MQTT-3.1.2-18", "password without the password flag")
	case len(c.WillMessage) > maxStringLen:
		return tooLong(e, t, "will payload", len(c.WillMessage))
	case len(c.Password) > maxStringLen:
		return tooLong(e, t, "password", len(c.Password))
	}
	if err := checkField(e, t, "client identifier", c.ClientID, text); err != nil {
		return err
	}
	if err := checkField(e, t, "user name", c.Username, text); err != nil {
		return err
	}
	if err := c.Properties.check(t, propCtx(t)); err != nil {
		return err
	}
	if !c.WillFlag {
		return nil
	}
	if err := checkField(e, t, "will topic", c.WillTopic, topicName); err != nil {
		return err
	}
	return c.WillProperties.check(t, ctxWill)
}
