package packets

import "strconv"

// Bits of the CONNECT flags byte (section 3.1.2.3).
const (
	connReserved     = 0x01
	connCleanSession = 0x02
	connWill         = 0x04
	connWillRetain   = 0x20
	connPassword     = 0x40
	connUsername     = 0x80
)

// Protocol names a CONNECT may carry.
const (
	name311 = "MQTT"
	name31  = "MQIsdp"
)

// Type reports TypeConnect.
func (*Connect) Type() Type { return TypeConnect }

// Decode parses a CONNECT body into c, overwriting every field. Strings
// and byte slices are copies that do not alias body.
//
// The protocol name and level are checked before anything else: an unknown
// name fails with an error matching ErrProtocolName, a known name with
// another level with one matching ErrProtocolLevel, which a server answers
// with CONNACK 0x01. "MQTT" with level 4 is the 3.1.1 CONNECT, with level 5
// the MQTT 5 CONNECT, whose failures name MQTT 5 statements; "MQIsdp" is
// level 3 only. Client identifier length and characters (zero bytes, over
// 23 bytes) are the server's decision [MQTT-3.1.3-5..9] [v5
// MQTT-3.1.3-5..8] and are not checked here.
func (c *Connect) Decode(fh FixedHeader, body []byte) error {
	if err := checkHeader(fh, TypeConnect, body, errs{}); err != nil {
		return err
	}
	d := decoder{t: TypeConnect, b: body}
	name, err := d.binary("protocol name")
	if err != nil {
		return err
	}
	var v Connect
	var want string
	switch string(name) {
	case name311:
		v.ProtocolName, want = name311, "4 or 5"
	case name31:
		v.ProtocolName, want = name31, "3"
	default:
		return protocolName(string(name)) // [MQTT-3.1.2-1]
	}
	if v.ProtocolLevel, err = d.byte("protocol level"); err != nil {
		return err
	}
	switch {
	case v.ProtocolName == name311 && v.ProtocolLevel == Level5:
		return c.decode5(v, &d)
	case v.ProtocolName == name311 && v.ProtocolLevel != Level311, v.ProtocolName == name31 && v.ProtocolLevel != Level31:
		// [MQTT-3.1.2-2] before the rest, whose layout depends on the level.
		return protocolLevel(v.ProtocolName, v.ProtocolLevel, want)
	}
	flags, err := d.byte("connect flags")
	if err != nil {
		return err
	}
	if err := checkConnectFlags(flags); err != nil {
		return err
	}
	v.CleanSession = flags&connCleanSession != 0
	v.WillFlag = flags&connWill != 0
	v.WillQoS = flags >> 3 & 3
	v.WillRetain = flags&connWillRetain != 0
	v.UsernameFlag = flags&connUsername != 0
	v.PasswordFlag = flags&connPassword != 0
	if v.KeepAlive, err = d.uint16("keep alive"); err != nil {
		return err
	}
	if err := v.decodePayload(&d); err != nil {
		return err
	}
	*c = v
	return nil
}

// protocolName is the failure of a CONNECT whose protocol name is not one
// this codec speaks [MQTT-3.1.2-1] [v5 MQTT-3.1.2-1]. The version is
// unknown, so the rule is named as in 3.1.1.
func protocolName(name string) error {
	err := newError(TypeConnect, "MQTT-3.1.2-1", "protocol name "+strconv.Quote(name), ErrProtocolName)
	err.Code = UnsupportedProtocolVersion
	return err
}

// protocolLevel is the failure of a CONNECT whose protocol level does not go
// with its name [MQTT-3.1.2-2] [v5 MQTT-3.1.2-2]: an MQTT 5 server may
// answer it with CONNACK 0x84, a 3.1.1 server with 0x01.
func protocolLevel(name string, level byte, want string) error {
	err := newError(TypeConnect, "MQTT-3.1.2-2", "protocol "+name+" level "+strconv.Itoa(int(level))+
		", want "+want, ErrProtocolLevel)
	err.Code = UnsupportedProtocolVersion
	return err
}

// checkConnectFlags applies the rules of section 3.1.2.3 to the flags byte.
func checkConnectFlags(flags byte) error {
	will, qos, retain := flags&connWill != 0, flags>>3&3, flags&connWillRetain != 0
	switch {
	case flags&connReserved != 0:
		return malformed(TypeConnect, "MQTT-3.1.2-3", "reserved connect flag is set")
	case !will && qos != 0:
		return malformed(TypeConnect, "MQTT-3.1.2-13", "will QoS without the will flag")
	case !will && retain:
		return malformed(TypeConnect, "MQTT-3.1.2-15", "will retain without the will flag")
	case qos == 3:
		return malformed(TypeConnect, "MQTT-3.1.2-14", "will QoS 3")
	case flags&connPassword != 0 && flags&connUsername == 0:
		return malformed(TypeConnect, "MQTT-3.1.2-22", "password flag without the user name flag")
	}
	return nil
}

// decodePayload reads the payload fields in their order, each present if
// and only if its flag says so [MQTT-3.1.3-1].
func (v *Connect) decodePayload(d *decoder) error {
	present := func(rule, field string) error {
		if len(d.b) == 0 {
			return malformed(TypeConnect, rule, field+" is missing")
		}
		return nil
	}
	// The client identifier is always present, first [MQTT-3.1.3-3], and a
	// UTF-8 string [MQTT-3.1.3-4].
	if err := present("MQTT-3.1.3-3", "client identifier"); err != nil {
		return err
	}
	id, err := d.str("client identifier", text)
	if err != nil {
		return err
	}
	v.ClientID = string(id)
	if v.WillFlag {
		// [MQTT-3.1.2-9] [MQTT-3.1.3-10]; the will topic is a topic name
		// (at least one character, no wildcards) [MQTT-4.7.3-1, MQTT-4.7.1-1].
		if err := present("MQTT-3.1.2-9", "will topic"); err != nil {
			return err
		}
		topic, err := d.str("will topic", topicName)
		if err != nil {
			return err
		}
		if err := present("MQTT-3.1.2-9", "will message"); err != nil {
			return err
		}
		msg, err := d.binary("will message")
		if err != nil {
			return err
		}
		v.WillTopic, v.WillMessage = string(topic), copyBytes(msg)
	}
	if v.UsernameFlag {
		if err := present("MQTT-3.1.2-19", "user name"); err != nil {
			return err
		}
		name, err := d.str("user name", text) // [MQTT-3.1.3-11]
		if err != nil {
			return err
		}
		v.Username = string(name)
	}
	if v.PasswordFlag {
		if err := present("MQTT-3.1.2-21", "password"); err != nil {
			return err
		}
		pw, err := d.binary("password")
		if err != nil {
			return err
		}
		v.Password = copyBytes(pw)
	}
	// Nothing may follow the last field the flags announce: bytes there
	// are the first field the flags say is absent.
	switch {
	case v.PasswordFlag:
		return d.end("2.2.3")
	case v.UsernameFlag:
		return d.end("MQTT-3.1.2-20")
	case v.WillFlag:
		return d.end("MQTT-3.1.2-18")
	}
	return d.end("MQTT-3.1.2-11")
}

// Append appends the encoded CONNECT to dst. An empty ProtocolName with
// ProtocolLevel 0 encodes as MQTT 3.1.1 ("MQTT", level 4), with Level5 as
// MQTT 5 ("MQTT", level 5). The 3.1.1 form ignores the properties.
func (c *Connect) Append(dst []byte) ([]byte, error) {
	name, level := c.ProtocolName, c.ProtocolLevel
	switch {
	case name == "" && level == 0:
		name, level = name311, Level311
	case name == "" && level == Level5:
		name = name311
	}
	if name == name311 && level == Level5 {
		return c.append5(dst)
	}
	if err := c.check(name, level); err != nil {
		return dst, err
	}
	n := 2 + len(name) + 1 + 1 + 2 + 2 + len(c.ClientID)
	flags := byte(0)
	if c.CleanSession {
		flags |= connCleanSession
	}
	if c.WillFlag {
		n += 2 + len(c.WillTopic) + 2 + len(c.WillMessage)
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
	if err := checkRemaining(TypeConnect, n); err != nil {
		return dst, err
	}
	dst = appendFixedHeader(dst, TypeConnect, 0, n)
	dst = appendString(dst, name)
	dst = append(dst, level, flags)
	dst = appendUint16(dst, c.KeepAlive)
	dst = appendString(dst, c.ClientID)
	if c.WillFlag {
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

// check refuses a CONNECT that a server would reject as malformed.
func (c *Connect) check(name string, level byte) error {
	t := TypeConnect
	switch {
	case name != name311 && name != name31:
		return invalid(t, "MQTT-3.1.2-1", "protocol name "+strconv.Quote(name))
	case name == name311 && level != Level311, name == name31 && level != Level31:
		return invalid(t, "MQTT-3.1.2-2", "protocol "+name+" level "+strconv.Itoa(int(level)))
	case !c.WillFlag && c.WillQoS != 0:
		return invalid(t, "MQTT-3.1.2-13", "will QoS without the will flag")
	case !c.WillFlag && c.WillRetain:
		return invalid(t, "MQTT-3.1.2-15", "will retain without the will flag")
	case !c.WillFlag && (c.WillTopic != "" || len(c.WillMessage) != 0):
		return invalid(t, "MQTT-3.1.2-11", "will topic or message without the will flag")
	case c.WillQoS > 2:
		return invalid(t, "MQTT-3.1.2-14", "will QoS above 2")
	case !c.UsernameFlag && c.Username != "":
		return invalid(t, "MQTT-3.1.2-18", "user name without the user name flag")
	case !c.PasswordFlag && len(c.Password) != 0:
		return invalid(t, "MQTT-3.1.2-20", "password without the password flag")
	case c.PasswordFlag && !c.UsernameFlag:
		return invalid(t, "MQTT-3.1.2-22", "password flag without the user name flag")
	case len(c.WillMessage) > maxStringLen:
		return tooLong(errs{encode: true}, t, "will message", len(c.WillMessage))
	case len(c.Password) > maxStringLen:
		return tooLong(errs{encode: true}, t, "password", len(c.Password))
	}
	e := errs{encode: true}
	if err := checkField(e, t, "client identifier", c.ClientID, text); err != nil {
		return err
	}
	if c.WillFlag {
		if err := checkField(e, t, "will topic", c.WillTopic, topicName); err != nil {
			return err
		}
	}
	return checkField(e, t, "user name", c.Username, text)
}
