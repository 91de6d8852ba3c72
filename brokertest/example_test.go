package brokertest_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/brokertest"
)

// TestDeviceV5 is the README's example of testing MQTT 5 client code.
func TestDeviceV5(t *testing.T) {
	srv := brokertest.New(t)
	cm, err := autopaho.NewConnection(t.Context(), autopaho.ClientConfig{
		ServerUrls:   []*url.URL{srv.ServerURL()}, // tcp://127.0.0.1:port
		KeepAlive:    30,
		ClientConfig: paho.ClientConfig{ClientID: "device-1"},
	})
	require.NoError(t, err)
	t.Cleanup(func() { cm.Disconnect(context.Background()) }) // before the broker's cleanup
	require.NoError(t, cm.AwaitConnection(t.Context()))

	_, err = cm.Publish(t.Context(), &paho.Publish{Topic: "devices/1/status", QoS: 1, Payload: []byte("up"),
		Properties: &paho.PublishProperties{User: paho.UserProperties{{Key: "firmware", Value: "1.2"}}}})
	require.NoError(t, err)
	m := srv.Next(t, "devices/1/status") // recorded with its MQTT 5 properties
	firmware, _ := brokertest.UserProperty(m, "firmware")
	assert.Equal(t, "1.2", firmware)
}

func ExampleUserProperty() {
	m := tern.Message{Topic: "devices/1/status", UserProperties: []tern.UserProperty{
		{Key: "firmware", Value: "1.2"}, {Key: "site", Value: "north"}, {Key: "site", Value: "south"},
	}}
	site, ok := brokertest.UserProperty(m, "site")
	fmt.Println(site, ok)
	_, ok = brokertest.UserProperty(m, "battery")
	fmt.Println(ok)
	// Output:
	// north true
	// false
}
