package packets_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/ternmq/tern/packets"
)

// tableReasons is Table 2-6, written out here: each code, its name and the
// packets it may appear in.
var tableReasons = []struct {
	code    packets.ReasonCode
	name    string
	packets string
}{
	{packets.Success, "Success", "CONNACK PUBACK PUBREC PUBREL PUBCOMP UNSUBACK AUTH DISCONNECT SUBACK"},
	{packets.GrantedQoS1, "Granted QoS 1", "SUBACK"},
	{packets.GrantedQoS2, "Granted QoS 2", "SUBACK"},
	{packets.DisconnectWithWill, "Disconnect with Will Message", "DISCONNECT"},
	{packets.NoMatchingSubscribers, "No matching subscribers", "PUBACK PUBREC"},
	{packets.NoSubscriptionExisted, "No subscription existed", "UNSUBACK"},
	{packets.ContinueAuthentication, "Continue authentication", "AUTH"},
	{packets.ReAuthenticate, "Re-authenticate", "AUTH"},
	{packets.UnspecifiedError, "Unspecified error", "CONNACK PUBACK PUBREC SUBACK UNSUBACK DISCONNECT"},
	{packets.MalformedPacket, "Malformed Packet", "CONNACK DISCONNECT"},
	{packets.ProtocolError, "Protocol Error", "CONNACK DISCONNECT"},
	{packets.ImplementationSpecificError, "Implementation specific error", "CONNACK PUBACK PUBREC SUBACK UNSUBACK DISCONNECT"},
	{packets.UnsupportedProtocolVersion, "Unsupported Protocol Version", "CONNACK"},
	{packets.ClientIdentifierNotValid, "Client Identifier not valid", "CONNACK"},
	{packets.BadUserNameOrPassword, "Bad User Name or Password", "CONNACK"},
	{packets.NotAuthorized, "Not authorized", "CONNACK PUBACK PUBREC SUBACK UNSUBACK DISCONNECT"},
	{packets.ServerUnavailable, "Server unavailable", "CONNACK"},
	{packets.ServerBusy, "Server busy", "CONNACK DISCONNECT"},
	{packets.Banned, "Banned", "CONNACK"},
	{packets.ServerShuttingDown, "Server shutting down", "DISCONNECT"},
	{packets.BadAuthenticationMethod, "Bad authentication method", "CONNACK DISCONNECT"},
	{packets.KeepAliveTimeout, "Keep Alive timeout", "DISCONNECT"},
	{packets.SessionTakenOver, "Session taken over", "DISCONNECT"},
	{packets.TopicFilterInvalid, "Topic Filter invalid", "SUBACK UNSUBACK DISCONNECT"},
	{packets.TopicNameInvalid, "Topic Name invalid", "CONNACK PUBACK PUBREC DISCONNECT"},
	{packets.PacketIdentifierInUse, "Packet Identifier in use", "PUBACK PUBREC SUBACK UNSUBACK"},
	{packets.PacketIdentifierNotFound, "Packet Identifier not found", "PUBREL PUBCOMP"},
	{packets.ReceiveMaximumExceeded, "Receive Maximum exceeded", "DISCONNECT"},
	{packets.TopicAliasInvalid, "Topic Alias invalid", "DISCONNECT"},
	{packets.PacketTooLarge, "Packet too large", "CONNACK DISCONNECT"},
	{packets.MessageRateTooHigh, "Message rate too high", "DISCONNECT"},
	{packets.QuotaExceeded, "Quota exceeded", "CONNACK PUBACK PUBREC SUBACK DISCONNECT"},
	{packets.AdministrativeAction, "Administrative action", "DISCONNECT"},
	{packets.PayloadFormatInvalid, "Payload format invalid", "CONNACK PUBACK PUBREC DISCONNECT"},
	{packets.RetainNotSupported, "Retain not supported", "CONNACK DISCONNECT"},
	{packets.QoSNotSupported, "QoS not supported", "CONNACK DISCONNECT"},
	{packets.UseAnotherServer, "Use another server", "CONNACK DISCONNECT"},
	{packets.ServerMoved, "Server moved", "CONNACK DISCONNECT"},
	{packets.SharedSubscriptionsNotSupported, "Shared Subscriptions not supported", "SUBACK DISCONNECT"},
	{packets.ConnectionRateExceeded, "Connection rate exceeded", "CONNACK DISCONNECT"},
	{packets.MaximumConnectTime, "Maximum connect time", "DISCONNECT"},
	{packets.SubscriptionIdentifiersNotSupported, "Subscription Identifiers not supported", "SUBACK DISCONNECT"},
	{packets.WildcardSubscriptionsNotSupported, "Wildcard Subscriptions not supported", "SUBACK DISCONNECT"},
}

// TestReasonCodes checks every value 0..255 against Table 2-6: its name,
// whether it is a failure (section 2.4: 0x80 or greater), and for each
// packet type whether the packet may carry it [v5 MQTT-3.2.2-8,
// MQTT-3.4.2-1, MQTT-3.5.2-1, MQTT-3.6.2-1, MQTT-3.7.2-1, MQTT-3.9.3-2,
// MQTT-3.11.3-2, MQTT-3.14.2-1, MQTT-3.15.2-1].
func TestReasonCodes(t *testing.T) {
	assert.Len(t, tableReasons, 43)
	rows := map[packets.ReasonCode]int{}
	for i, r := range tableReasons {
		rows[r.code] = i
	}
	for v := range 256 {
		c := packets.ReasonCode(v)
		assert.Equal(t, v >= 0x80, c.IsError(), "%#x IsError", v)
		i, ok := rows[c]
		if !ok {
			assert.Equal(t, fmt.Sprintf("reason code %#x", v), c.String())
			for typ := range packets.Type(16) {
				assert.False(t, c.ValidFor(typ), "undefined %#x valid for %v", v, typ)
			}
			continue
		}
		assert.Equal(t, tableReasons[i].name, c.String())
		for typ := range packets.Type(16) {
			want := strings.Contains(" "+tableReasons[i].packets+" ", " "+typ.String()+" ")
			assert.Equal(t, want, c.ValidFor(typ), "%v ValidFor(%v)", c, typ)
		}
	}
	assert.False(t, packets.Success.ValidFor(packets.Type(16)))
	// The aliases of 0x00.
	assert.Equal(t, packets.Success, packets.NormalDisconnection)
	assert.Equal(t, packets.Success, packets.GrantedQoS0)
}

// TestReasonCodeInvalidPerPacket: a Reason Code outside its packet's table
// parses, so it is a Protocol Error (section 1.2), and Append refuses it.
func TestReasonCodeInvalidPerPacket(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		p    packets.Packet
		rule string
	}{
		{"CONNACK", frame(0x20, []byte{0, 0x10}, props()), &packets.Connack{Version: 5, ReturnCode: 0x10}, "MQTT-3.2.2-8"},
		{"PUBACK", []byte{0x40, 3, 0, 1, 0x92}, &packets.Puback{Version: 5, PacketID: 1, ReasonCode: 0x92}, "MQTT-3.4.2-1"},
		{"PUBREC", []byte{0x50, 3, 0, 1, 0x01}, &packets.Pubrec{Version: 5, PacketID: 1, ReasonCode: 0x01}, "MQTT-3.5.2-1"},
		{"PUBREL", []byte{0x62, 3, 0, 1, 0x80}, &packets.Pubrel{Version: 5, PacketID: 1, ReasonCode: 0x80}, "MQTT-3.6.2-1"},
		{"PUBCOMP", []byte{0x70, 3, 0, 1, 0x10}, &packets.Pubcomp{Version: 5, PacketID: 1, ReasonCode: 0x10}, "MQTT-3.7.2-1"},
		{"SUBACK", frame(0x90, u16(1), props(), []byte{0, 3}), &packets.Suback{Version: 5, PacketID: 1, ReturnCodes: []byte{0, 3}}, "MQTT-3.9.3-2"},
		{"SUBACK Unsubscribe code", frame(0x90, u16(1), props(), []byte{0x11}), &packets.Suback{Version: 5, PacketID: 1, ReturnCodes: []byte{0x11}}, "MQTT-3.9.3-2"},
		{"UNSUBACK", frame(0xB0, u16(1), props(), []byte{0x01}), &packets.Unsuback{Version: 5, PacketID: 1, ReasonCodes: []byte{0x01}}, "MQTT-3.11.3-2"},
		{"DISCONNECT", []byte{0xE0, 1, 0x18}, &packets.Disconnect{Version: 5, ReasonCode: 0x18}, "MQTT-3.14.2-1"},
		{"DISCONNECT undefined", []byte{0xE0, 1, 0xFF}, &packets.Disconnect{Version: 5, ReasonCode: 0xFF}, "MQTT-3.14.2-1"},
		{"AUTH", frame(0xF0, []byte{0x87}, props(pStr(packets.PropAuthMethod, "m"))),
			&packets.Auth{Version: 5, ReasonCode: 0x87, Properties: packets.Properties{AuthMethod: "m"}}, "MQTT-3.15.2-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeWireV(t, packets.Level5, tc.wire)
			wantV5(t, err, tc.rule, packets.ProtocolError, nil)
			_, err = tc.p.Append(nil)
			wantV5(t, err, tc.rule, packets.ProtocolError, packets.ErrInvalidPacket)
		})
	}
}
