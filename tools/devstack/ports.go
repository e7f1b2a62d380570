package main

import (
	"fmt"
	"math/rand/v2"
	"net"
)

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Servers that cannot be told to pick their own port get one from here;
// retryOnClash covers the window before they bind it.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freePorts returns n distinct free TCP ports.
func freePorts(n int) ([]int, error) {
	// Hold all listeners until the end so the kernel cannot hand out the
	// same port twice.
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// UDP range for LiveKit's ICE ports. It sits below Linux's ephemeral range
// (32768-60999), so ports the kernel hands to tests and clients never land
// in it; a random block keeps two stacks on one machine apart.
const (
	udpRangeLow   = 20000
	udpRangeHigh  = 32000
	udpRangeWidth = 200
)

// freeUDPRange returns the first port of a block of udpRangeWidth UDP ports
// on 127.0.0.1 that were all free a moment ago.
func freeUDPRange() (int, error) {
	blocks := (udpRangeHigh - udpRangeLow) / udpRangeWidth
	for range 20 {
		start := udpRangeLow + rand.IntN(blocks)*udpRangeWidth
		if udpBlockFree(start, udpRangeWidth) {
			return start, nil
		}
	}
	return 0, fmt.Errorf("no free block of %d UDP ports in %d-%d", udpRangeWidth, udpRangeLow, udpRangeHigh)
}

func udpBlockFree(start, width int) bool {
	conns := make([]net.PacketConn, 0, width)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for p := start; p < start+width; p++ {
		c, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return false
		}
		conns = append(conns, c)
	}
	return true
}
