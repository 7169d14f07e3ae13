package fairq

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const crashDirEnv = "FAIRQ_CRASH_CHILD_DIR"

// TestCrashChild is the child side of TestCrashKeepsEveryAcknowledgedEnqueue:
// it enqueues from 16 goroutines and prints each ID after Enqueue returned,
// until it is killed or its own bounds run out.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child process of TestCrashKeepsEveryAcknowledgedEnqueue")
	}
	q, err := Open(dir, Options{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	var out sync.Mutex
	deadline := time.Now().Add(60 * time.Second)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000 && time.Now().Before(deadline); i++ {
				id, err := q.Enqueue(context.Background(), &Message{
					Tenant: fmt.Sprintf("t%d", w%4), From: "s@x.example",
					Recipients: []string{fmt.Sprintf("r%d@a.example", i), fmt.Sprintf("r%d@b.example", i)},
					Body:       []byte(strings.Repeat("body ", 200)),
				})
				if err != nil {
					fmt.Println("enqueue:", err)
					os.Exit(4)
				}
				out.Lock()
				fmt.Fprintf(os.Stdout, "ok %s\n", id) // one write syscall per line
				out.Unlock()
			}
		}()
	}
	wg.Wait()
	os.Exit(0)
}

// The crash scenario: a child enqueues under load and is SIGKILLed; every
// enqueue that returned (and so would have been answered 250) is in the
// queue when it is opened again, with both of its deliveries and its body.
func TestCrashKeepsEveryAcknowledgedEnqueue(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var acked []MsgID
	killed := false
	timeout := time.After(30 * time.Second)
	for line := range lines {
		id, err := ParseMsgID(strings.TrimPrefix(line, "ok "))
		if !strings.HasPrefix(line, "ok ") || err != nil {
			t.Fatalf("child said %q", line)
		}
		acked = append(acked, id)
		if !killed {
			select {
			case <-timeout:
				killed = true
			default:
				killed = len(acked) >= 3000
			}
			if killed {
				// Kill mid-stream; lines already written are still read below.
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child ended before it was killed: %v", err)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child not killed by SIGKILL: %v", err)
	}

	q, err := Open(dir, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for _, id := range acked {
		for _, k := range [][]byte{bodyKey(id), deliveryKey(id, 0), deliveryKey(id, 1)} {
			_, closer, err := q.db.Get(k)
			if err != nil {
				t.Fatalf("message %s acknowledged before the crash: %q: %v", id, k, err)
			}
			closer.Close()
		}
	}
	total := 0
	for _, ts := range q.Stats().Tenants {
		total += ts.Ready + ts.Deferred
	}
	if total < 2*len(acked) {
		t.Fatalf("recovered %d deliveries, want at least %d", total, 2*len(acked))
	}
	t.Logf("%d acknowledged enqueues all present after SIGKILL (%d deliveries recovered)", len(acked), total)
}
