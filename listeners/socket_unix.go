//go:build unix

package listeners

import (
	"net"
	"syscall"
)

// discardReceived reads and drops what c's socket has received and not yet
// been read, without waiting, before c is closed on an error: closing a
// TCP socket with unread bytes sends a reset instead of a FIN, and a reset
// can make the peer drop what it has not read yet (the close frame that
// explains the error). At most limit bytes are dropped.
func discardReceived(c net.Conn, limit int) {
	raw, _, ok := Socket(c)
	if !ok {
		return
	}
	buf := make([]byte, 4<<10)
	_ = raw.Read(func(fd uintptr) bool {
		for n := 0; n < limit; {
			m, _, err := syscall.Recvfrom(int(fd), buf, syscall.MSG_DONTWAIT)
			if err != nil || m <= 0 {
				break
			}
			n += m
		}
		return true
	})
}
