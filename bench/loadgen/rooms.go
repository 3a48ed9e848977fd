package loadgen

import (
	"context"
	"time"
)

// runRooms joins Conns connections to Rooms rooms; then every connection
// publishes over its own socket at Rate messages per second for Duration,
// the connections' turns spread evenly over each period.
func (s *session) runRooms(ctx context.Context) Summary {
	sum := s.connectAndJoin(ctx)
	members := s.clientsByRoom()
	s.mu.Lock()
	publishers := s.clients
	s.mu.Unlock()

	del := &DeliveryStats{}
	sum.Delivery = del
	sum.Server = s.measureDelivery(ctx, del, members, s.received.Load(), func(ctx context.Context) []int64 {
		sent := make([]int64, s.cfg.Rooms)
		// One scheduler writes for every connection: the total rate
		// (Conns x Rate) is what the loader must sustain, whatever the
		// number of connections.
		lag := pace(ctx, s.cfg.Rate*float64(len(publishers)), s.cfg.Duration, func(seq int64) {
			c := publishers[seq%int64(len(publishers))]
			if !c.joined.Load() {
				return
			}
			// A fresh buffer each time: writeText masks its payload in place.
			buf := append(make([]byte, 0, 64+s.cfg.Size), `{"type":"publish","room":"`...)
			buf = append(buf, roomName(c.room)...)
			buf = append(buf, `","data":`...)
			buf = appendStamp(buf, time.Now().UnixNano(), seq, s.cfg.Size)
			buf = append(buf, '}')
			if err := c.writeText(buf); err != nil {
				del.PublishErrors++
				return
			}
			sent[c.room]++
		})
		del.PublishLagMaxMs = lag.Seconds() * 1000
		return sent
	})
	return sum
}
