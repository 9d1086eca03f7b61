package transport

import (
	"net"
	"sync"
)

// LimitListener returns a listener that holds at most max connections open
// at once. Past it, Accept waits until one closes: surplus connections wait
// in the kernel's accept backlog, where they cost the gateway no goroutine,
// buffer or descriptor, instead of being read (and having their headers
// timed) by a server already at capacity. opened, if not nil, is told of
// every connection accepted (+1) and closed (-1), for a gauge.
func LimitListener(ln net.Listener, max int, opened func(delta int)) net.Listener {
	if opened == nil {
		opened = func(int) {}
	}
	return &limitListener{Listener: ln, slots: make(chan struct{}, max), done: make(chan struct{}), opened: opened}
}

type limitListener struct {
	net.Listener
	slots     chan struct{}
	done      chan struct{} // closed by Close, to wake a waiting Accept
	closeOnce sync.Once
	opened    func(delta int)
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	l.opened(1)
	return &limitConn{Conn: c, release: func() { <-l.slots; l.opened(-1) }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its slot back once, however often it is closed.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
