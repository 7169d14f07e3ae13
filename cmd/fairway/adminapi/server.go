package adminapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// HTTP server limits, the same on both listeners. Reads and writes are
// generous because an import of thousands of mailboxes hashes every
// password before it answers.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 5 * time.Minute
	writeTimeout      = 10 * time.Minute
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
)

// Server serves an API on the admin socket and, optionally, on TCP.
type Server struct {
	log        *slog.Logger
	socketPath string
	socketInfo os.FileInfo // the socket file as created, to remove only ours
	servers    []*http.Server
	tcpAddr    net.Addr
	wg         sync.WaitGroup
}

// Listen starts serving api on the unix socket at socketPath (mode 0600,
// trusted) and, if tcpAddr is not "", on TCP with bearer tokens. It refuses
// to start when another process answers on the socket; a stale socket file
// is replaced.
func Listen(api *API, socketPath, tcpAddr string, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{log: log.With("component", "adminapi"), socketPath: socketPath}
	sock, err := listenSocket(socketPath)
	if err != nil {
		return nil, err
	}
	if s.socketInfo, err = os.Lstat(socketPath); err != nil {
		sock.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	var tcp net.Listener
	if tcpAddr != "" {
		if tcp, err = net.Listen("tcp", tcpAddr); err != nil {
			sock.Close()
			s.removeSocket()
			return nil, fmt.Errorf("admin listener %s: %w", tcpAddr, err)
		}
		s.tcpAddr = tcp.Addr()
	}
	s.serve(sock, api.SocketHandler(), "unix")
	s.log.Info("admin API listening", "socket", socketPath)
	if tcp != nil {
		s.serve(tcp, api.TCPHandler(), "tcp")
		s.log.Info("admin API listening", "addr", tcp.Addr().String())
	}
	return s, nil
}

// TCPAddr is the TCP listener's address, nil if there is none.
func (s *Server) TCPAddr() net.Addr { return s.tcpAddr }

func (s *Server) serve(l net.Listener, h http.Handler, network string) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.servers = append(s.servers, srv)
	s.wg.Go(func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin API stopped serving", "network", network, "err", err)
		}
	})
}

// Shutdown stops accepting, waits for requests in progress until ctx is
// done, then closes what is left and removes the socket file.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	for _, srv := range s.servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err, srv.Close())
		}
	}
	s.wg.Wait()
	s.removeSocket()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("admin API shutdown: %w", err)
	}
	return nil
}

// removeSocket removes the socket file if it is still the one Listen made.
func (s *Server) removeSocket() {
	if fi, err := os.Lstat(s.socketPath); err == nil && s.socketInfo != nil && os.SameFile(fi, s.socketInfo) {
		if err := os.Remove(s.socketPath); err != nil {
			s.log.Warn("removing admin socket", "socket", s.socketPath, "err", err)
		}
	}
}

// maxSocketPath is about the longest path a unix socket may have (108
// bytes on Linux, 104 on the BSDs).
const maxSocketPath = 104

// listenSocket listens on a unix socket at path with mode 0600. The socket
// is made under a temporary name, restricted, then renamed into place, so
// it is never reachable at path with a wider mode.
func listenSocket(path string) (*net.UnixListener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("admin socket %s: another fairway daemon is listening on it", path)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("admin socket %s: exists and is not a socket; not removing it", path)
		}
		if err := os.Remove(path); err != nil { // stale: nobody answers on it
			return nil, fmt.Errorf("admin socket %s: removing the stale socket: %w", path, err)
		}
	}
	tmp := path + "." + strconv.Itoa(os.Getpid()) + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		if len(tmp) >= maxSocketPath {
			return nil, fmt.Errorf("admin socket %s: %w (the path is too long for a unix socket; use a shorter data_dir)", path, err)
		}
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	// The file moves to path; Server.removeSocket removes it there.
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return l, nil
}
