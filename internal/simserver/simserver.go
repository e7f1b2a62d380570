// Package simserver is the life cycle the local stand-ins for remote APIs
// share (the OpenAI simulators): they serve loopback addresses only, start
// once, and Close ends every connection, hijacked WebSockets included,
// and waits for their goroutines, so a test leaves nothing running.
package simserver

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server serves one http.Handler.
type Server struct {
	// Immutable after New.
	name string
	quit chan struct{}

	wg sync.WaitGroup // the serving goroutine and every Hold

	mu      sync.Mutex // guards the fields below
	started bool
	closed  bool
	http    *http.Server
}

// New makes a server; name prefixes its errors.
func New(name string) *Server { return &Server{name: name, quit: make(chan struct{})} }

// CheckLoopback refuses an address that is not on loopback: these servers
// are test doubles and must never be reachable from elsewhere.
func CheckLoopback(name, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s: listen address %q: %w", name, addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%s: listen address %q is not loopback; the simulator is a test double", name, addr)
	}
	return nil
}

// Start listens on addr (loopback only, e.g. "127.0.0.1:0") and serves h.
// It returns the address it listens on, as host:port.
func (s *Server) Start(addr string, h http.Handler) (string, error) {
	if err := CheckLoopback(s.name, addr); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return "", fmt.Errorf("%s: Start called twice or after Close", s.name)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("%s: listen %s: %w", s.name, addr, err)
	}
	s.http = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	s.started = true
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.http.Serve(ln)
	}()
	return ln.Addr().String(), nil
}

// ErrClosed is Hold's answer once Close began.
var ErrClosed = errors.New("simserver: closed")

// Hold makes Close wait for the caller (a handler that hijacked its
// connection, which http.Server.Close does not wait for) until it calls
// release. It fails once Close began.
func (s *Server) Hold() (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	s.wg.Add(1)
	return s.wg.Done, nil
}

// Quit is closed when Close begins: long-running handlers stop on it.
func (s *Server) Quit() <-chan struct{} { return s.quit }

// Close stops serving, closes Quit and waits for the serving goroutine
// and every Hold. Idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.quit)
	h := s.http
	s.mu.Unlock()
	var err error
	if h != nil {
		err = h.Close()
	}
	s.wg.Wait()
	return err
}
