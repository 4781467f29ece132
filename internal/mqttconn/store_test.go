package mqttconn

import (
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestResendStoreGivesACopyOfAPublish: what paho resends after a reconnection is a copy of the
// stored publish, so marking it a duplicate leaves the packet still queued untouched; other
// packets come back as stored, and a missing one as nil.
func TestResendStoreGivesACopyOfAPublish(t *testing.T) {
	s := newResendStore()
	s.Open()
	defer s.Close()

	pub := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	pub.Qos, pub.Retain, pub.TopicName, pub.MessageID, pub.Payload = 1, true, "m/d/c/c/control/proplet/task_metrics", 7, []byte(`{"task_id":"t"}`)
	s.Put("o.7", pub)

	got, ok := s.Get("o.7").(*packets.PublishPacket)
	require.True(t, ok)
	assert.NotSame(t, pub, got)
	assert.Equal(t, pub.FixedHeader, got.FixedHeader)
	assert.Equal(t, pub.TopicName, got.TopicName)
	assert.Equal(t, pub.MessageID, got.MessageID)
	assert.Equal(t, pub.Payload, got.Payload)
	got.Dup = true
	assert.False(t, pub.Dup, "the queued packet is not marked")

	sub := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	sub.MessageID = 8
	s.Put("o.8", sub)
	assert.Same(t, sub, s.Get("o.8"))
	assert.Nil(t, s.Get("o.9"))
}
