package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeBinary builds the real binary and runs it as an operator would.
func TestServeBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped in -short mode")
	}
	bin := filepath.Join(t.TempDir(), "fairway")
	buildCtx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(buildCtx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	t.Run("SIGTERM exits 0", func(t *testing.T) {
		dir := t.TempDir()
		dataDir := filepath.Join(dir, "data")
		// Listeners on port 0, so no fixed port can clash once they exist.
		config := fmt.Sprintf(`data_dir = %q
[listen]
mx          = "127.0.0.1:0"
submission  = "127.0.0.1:0"
submissions = "127.0.0.1:0"
imap        = "127.0.0.1:0"
imaps       = "127.0.0.1:0"
admin       = "127.0.0.1:0"
`, dataDir)
		configPath := filepath.Join(dir, "fairway.toml")
		if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}

		// A file, not a buffer: the log can be read while serve still runs.
		logFile, err := os.Create(filepath.Join(dir, "stderr.log"))
		if err != nil {
			t.Fatal(err)
		}
		defer logFile.Close()
		log := func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) }
		cmd := exec.Command(bin, "serve", "--config", configPath)
		cmd.Stderr = logFile
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() {
			// Whatever happened above, leave no process behind.
			_ = cmd.Process.Kill()
			<-exited
		})

		queueDir := filepath.Join(dataDir, "queue")
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(queueDir); err == nil {
				break
			}
			select {
			case err := <-exited:
				exited <- err // for the cleanup
				t.Fatalf("serve exited before creating %s: %v\n%s", queueDir, err, log())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not created within 10s\n%s", queueDir, log())
			}
			time.Sleep(20 * time.Millisecond)
		}

		if fi, err := os.Stat(dataDir); err != nil {
			t.Fatal(err)
		} else if perm := fi.Mode().Perm(); perm != 0o700 {
			t.Errorf("data_dir mode %v, want 0700", perm)
		}

		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			if err != nil {
				t.Fatalf("serve after SIGTERM: %v, want exit 0\n%s", err, log())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("serve still running 10s after SIGTERM\n%s", log())
		}
		if !strings.Contains(log(), "fairway started") {
			t.Errorf("no startup line in the log:\n%s", log())
		}
	})

	t.Run("admin CLI", func(t *testing.T) { testAdminCLI(t, bin) })

	t.Run("unknown key exits 1 naming it", func(t *testing.T) {
		dir := t.TempDir()
		configPath := filepath.Join(dir, "fairway.toml")
		config := fmt.Sprintf("data_dir = %q\n[listen]\nsmtp = \"127.0.0.1:0\"\n", filepath.Join(dir, "data"))
		if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "serve", "--config", configPath).CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("serve: %v, want exit status 1\n%s", err, out)
		}
		if want := configPath + `:3: unknown key "listen.smtp"`; !strings.Contains(string(out), want) {
			t.Errorf("output %q does not contain %q", out, want)
		}
		if _, err := os.Stat(filepath.Join(dir, "data")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("data_dir created despite the bad config (stat: %v)", err)
		}
	})
}
