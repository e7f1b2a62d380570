package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
)

// The stack and the command it runs live in a private network namespace
// that devstack creates itself (what `unshare -rn` does: a user namespace,
// so no root is needed, and a network namespace in it). Inside there is
// only lo and one dummy link with a /32 address, no routes and no IPv6 on
// the dummy link:
//   - WebRTC works: pion (in LiveKit, livekit-sip and the SDK clients)
//     never offers a loopback ICE candidate, so it needs an address that
//     is not loopback, and on the host it would take eth0's;
//   - nothing can leave (no route) and nothing binds a real interface, so
//     a server listening on 0.0.0.0 is still private;
//   - parallel stacks never collide: each has its own ports.
//
// Anything a command needs from outside (the Go module proxy) must be
// fetched before it enters; `make test` downloads modules first.
const (
	// netnsLink is the dummy link. ifb is used where the kernel has no
	// dummy driver (modules cannot be loaded from a user namespace).
	netnsLink = "ds0"
	// NetnsAddr is the dummy link's address: what LiveKit and livekit-sip
	// offer as their media address. Private, and only ever seen inside.
	netnsAddr = "10.213.0.1"
	// netnsChildVar marks the devstack process that runs inside the
	// namespace (it sets the network up); never passed on to children.
	netnsChildVar = "DEVSTACK_NETNS_CHILD"
)

// netnsLinkTypes are tried in order: the first the kernel offers is used.
var netnsLinkTypes = []string{"dummy", "ifb"}

// inNetns reports whether this process is the one devstack started inside
// the namespace.
func inNetns() bool { return os.Getenv(netnsChildVar) == "1" }

// runInNetns runs this binary again with args, inside a new private
// network namespace, and returns its exit code. Signals devstack gets are
// passed on, and the inner process is killed if devstack dies.
func runInNetns(args []string, sigs <-chan os.Signal) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "devstack: cannot find its own binary to enter a network namespace: %v\n", err)
		return 1
	}
	env := mergeEnv(os.Environ(), []envVar{{netnsChildVar, "1"}})
	var cmd *exec.Cmd
	for _, attr := range netnsAttrs() {
		cmd, err = startChild(append([]string{self}, args...), env, attr)
		if err == nil {
			break
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "devstack: cannot create a private network namespace: %v\n"+
			"  it needs user namespaces (sysctl user.max_user_namespaces > 0, kernel.unprivileged_userns_clone=1)\n", err)
		return 1
	}
	return waitChild(cmd, sigs)
}

// netnsAttrs are the ways to create the namespace, in order: a user
// namespace mapping us to its root (works without privileges and as
// root), then for root where user namespaces are forbidden, a network
// namespace alone.
func netnsAttrs() []*syscall.SysProcAttr {
	attrs := []*syscall.SysProcAttr{{
		Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}},
		GidMappingsEnableSetgroups: false,
	}}
	if os.Geteuid() == 0 {
		attrs = append(attrs, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET})
	}
	return attrs
}

// setupNetns brings the namespace's network up, in the process that runs
// inside it, and checks that it holds nothing but lo and the dummy link.
func setupNetns() error {
	os.Unsetenv(netnsChildVar)
	ipCmd, err := exec.LookPath("ip")
	if err != nil {
		return fmt.Errorf("the ip command is missing (Debian package iproute2; run scripts/install-deps.sh): %w", err)
	}
	ip := func(args ...string) error {
		out, err := exec.Command(ipCmd, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := ip("link", "set", "lo", "up"); err != nil {
		return err
	}
	// Links created from now on get no IPv6 address (lo keeps ::1).
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0); err != nil &&
		!errors.Is(err, os.ErrNotExist) { // a kernel without IPv6
		return fmt.Errorf("disable IPv6 on new links: %w", err)
	}
	var addErrs []error
	added := false
	for _, typ := range netnsLinkTypes {
		err := ip("link", "add", netnsLink, "type", typ)
		if err == nil {
			added = true
			break
		}
		addErrs = append(addErrs, err)
	}
	if !added {
		return fmt.Errorf("no dummy link type works here: %w", errors.Join(addErrs...))
	}
	// A /32 adds only a local route: the address is reachable from inside
	// and there is still no route anywhere else.
	if err := ip("addr", "add", netnsAddr+"/32", "dev", netnsLink); err != nil {
		return err
	}
	if err := ip("link", "set", netnsLink, "up"); err != nil {
		return err
	}
	return checkNetns()
}

// checkNetns fails unless the namespace has exactly lo and the dummy link,
// both up, the dummy holding only netnsAddr.
func checkNetns() error {
	ifaces, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("list interfaces: %w", err)
	}
	var names []string
	for _, ifc := range ifaces {
		names = append(names, ifc.Name)
		if ifc.Flags&net.FlagUp == 0 {
			return fmt.Errorf("interface %s is down", ifc.Name)
		}
	}
	slices.Sort(names)
	if want := []string{netnsLink, "lo"}; !slices.Equal(names, want) {
		return fmt.Errorf("namespace has interfaces %v, want only %v", names, want)
	}
	link, err := net.InterfaceByName(netnsLink)
	if err != nil {
		return err
	}
	addrs, err := link.Addrs()
	if err != nil {
		return err
	}
	if len(addrs) != 1 || addrs[0].String() != netnsAddr+"/32" {
		return fmt.Errorf("%s has addresses %v, want only %s/32", netnsLink, addrs, netnsAddr)
	}
	return nil
}
