package mqttconn

import (
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// resendStore is paho's in-memory store of unacknowledged packets, except that Get returns a
// copy. paho stores a publish before queueing it for the connection, and after a reconnection
// sends again what it finds in the store, marking each copy found as a duplicate (DUP). With
// paho's own store the packet found is the one still queued from before the connection
// dropped: the mark is written while the new connection's writer encodes that same packet, a
// data race (eclipse-paho/paho.mqtt.golang#703). A copy keeps the queued packet as it was and
// sends the duplicate marked, as the protocol asks. Get runs only when paho resumes after a
// reconnection, so the copy costs nothing while connected.
type resendStore struct {
	*paho.MemoryStore
}

func newResendStore() *resendStore { return &resendStore{paho.NewMemoryStore()} }

// Get returns a copy of a stored publish; other packets as stored (paho changes none of them
// when it resumes). The copy reads the queued packet's fields and writes none: encoding it
// would write its length while the connection's writer may be encoding it too.
func (s *resendStore) Get(key string) packets.ControlPacket {
	p := s.MemoryStore.Get(key)
	pub, ok := p.(*packets.PublishPacket)
	if !ok {
		return p
	}
	c := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	c.Qos, c.Retain, c.Dup = pub.Qos, pub.Retain, pub.Dup
	c.TopicName, c.MessageID, c.Payload = pub.TopicName, pub.MessageID, pub.Payload
	return c
}
