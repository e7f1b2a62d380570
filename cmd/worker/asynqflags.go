package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/queue"
)

// asynqFlags prints the flags that point asynq's CLI (or asynqmon) at
// REDIS_URL's server: asynq's CLI takes host:port, --password and
// --tls_server, not a URL. The password is printed only when asked for,
// to stdout only; what the tools cannot do (a username, a private CA) is
// said on stderr, so `asynq $(worker queue asynq-flags) stats` works.
func asynqFlags(e env, rc config.Redis, forAsynqmon, withPassword bool) int {
	opt, err := queue.ConnOpt(rc)
	if err != nil {
		return configError(e, err)
	}
	names := map[bool][5]string{
		false: {"--uri", "--db", "--tls_server", "--insecure", "--password"},
		true:  {"--redis-addr", "--redis-db", "--redis-tls", "--redis-insecure-tls", "--redis-password"},
	}[forAsynqmon]
	flags := []string{names[0], opt.Addr, names[1], strconv.Itoa(opt.DB)}
	if opt.TLSConfig != nil {
		flags = append(flags, names[2], opt.TLSConfig.ServerName)
		if opt.TLSConfig.InsecureSkipVerify {
			flags = append(flags, names[3])
		}
	}
	if withPassword && opt.Password != "" {
		flags = append(flags, names[4], shellQuote(opt.Password))
	}
	if forAsynqmon {
		// asynqmon shows payloads; an inline call's holds personal data.
		flags = append(flags, "--max-payload-length", "0")
	}
	fmt.Fprintln(e.stdout, strings.Join(flags, " "))

	var notes []string
	if opt.Password != "" && !withPassword {
		notes = append(notes, fmt.Sprintf("the password is left out: add --password, or give it in the environment (%s)",
			map[bool]string{false: "asynq's CLI reads PASSWORD", true: "asynqmon reads REDIS_PASSWORD"}[forAsynqmon]))
	}
	if opt.Username != "" && opt.Username != "default" {
		notes = append(notes, fmt.Sprintf("user %q: asynq's CLI has no username flag; asynqmon takes the whole URL (--redis-url)", opt.Username))
	}
	if rc.CACertPEM != "" {
		notes = append(notes, map[bool]string{
			false: "REDIS_CA_CERT: asynq's CLI verifies against the system's CAs only: add the CA to them",
			true:  "REDIS_CA_CERT: write it to a file and pass --redis-ca-cert FILE (asynqmon reads REDIS_CA_CERT as a path)",
		}[forAsynqmon])
	}
	if !forAsynqmon {
		notes = append(notes, "`asynq task list` prints payloads (an inline call's holds personal data): `worker queue archived` does not")
	}
	for _, n := range notes {
		fmt.Fprintln(e.stderr, "worker queue asynq-flags: "+n)
	}
	return 0
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
