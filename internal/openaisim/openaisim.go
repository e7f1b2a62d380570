// Package openaisim serves both OpenAI simulators behind one base URL, as
// the real API serves both from api.openai.com/v1: the Realtime WebSocket
// (realtimesim) and chat completions (chatsim), so one OPENAI_BASE_URL works
// for calls and post-call analysis. Test double only: loopback addresses.
package openaisim

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/docshield/voice-worker/internal/analysis/chatsim"
	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
	"github.com/docshield/voice-worker/internal/simserver"
)

// Server fronts the two simulators.
type Server struct {
	rt   *realtimesim.Server
	chat *chatsim.Server
	http *http.Server
	done chan struct{}
}

// Start serves on addr (loopback) and returns the base URL (…/v1).
func Start(addr, apiKey string, rtScript realtimesim.Script, chatScript chatsim.Script) (*Server, string, error) {
	if err := simserver.CheckLoopback("openaisim", addr); err != nil {
		return nil, "", err
	}
	s := &Server{
		rt:   realtimesim.New(rtScript, realtimesim.WithAPIKey(apiKey)),
		chat: chatsim.New(chatScript, chatsim.WithAPIKey(apiKey)),
		done: make(chan struct{}),
	}
	rtBase, err := s.rt.Start("127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	chatBase, err := s.chat.Start("127.0.0.1:0")
	if err != nil {
		s.rt.Close()
		return nil, "", err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.rt.Close()
		s.chat.Close()
		return nil, "", err
	}
	// ReverseProxy forwards WebSocket upgrades, so the Realtime session
	// passes through unchanged.
	mux := http.NewServeMux()
	mux.Handle("/v1/chat/completions", proxy(chatBase))
	mux.Handle("/", proxy(rtBase))
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(s.done)
		_ = s.http.Serve(ln)
	}()
	return s, "http://" + ln.Addr().String() + "/v1", nil
}

func proxy(base string) http.Handler {
	u, _ := url.Parse(base) // ours, from Start
	u.Path = ""
	return httputil.NewSingleHostReverseProxy(u)
}

// Realtime is the Realtime simulator, for assertions on what it received.
func (s *Server) Realtime() *realtimesim.Server { return s.rt }

// Chat is the chat-completions simulator.
func (s *Server) Chat() *chatsim.Server { return s.chat }

// Close stops everything and waits.
func (s *Server) Close() {
	_ = s.http.Close()
	<-s.done
	s.rt.Close()
	s.chat.Close()
}
