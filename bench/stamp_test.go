package bench

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestStampRoundTrip(t *testing.T) {
	st := Stamp{ID: "r1.acme.17", Tenant: "acme", Submit: time.Unix(1764000000, 123456789)}
	for _, size := range []int{0, 100, 4096, 100 << 10} {
		msg := BuildMessage(st, "a@acme.test", "b@dest.test", size)
		if len(msg) < size {
			t.Errorf("size %d: message is %d bytes", size, len(msg))
		}
		if size > 1000 && len(msg) > size+100 {
			t.Errorf("size %d: message is %d bytes, far over", size, len(msg))
		}
		for _, line := range bytes.Split(msg, []byte("\r\n")) {
			if len(line) > 998 || bytes.IndexByte(line, '\n') >= 0 {
				t.Fatalf("size %d: line of %d bytes or a bare LF", size, len(line))
			}
		}
		got, err := ReadStamp(bytes.NewReader(msg))
		if err != nil {
			t.Fatalf("size %d: ReadStamp: %v", size, err)
		}
		if got.ID != st.ID || got.Tenant != st.Tenant || !got.Submit.Equal(st.Submit) {
			t.Errorf("size %d: ReadStamp = %+v, want %+v", size, got, st)
		}
	}
}

func TestReadStampAfterRelayHeaders(t *testing.T) {
	// A relay prepends Received and DKIM headers and may change the case.
	msg := "Received: from x by y; Tue, 1 Jan 2030 00:00:00 +0000\r\n" +
		"DKIM-Signature: v=1; " + strings.Repeat("a", 10000) + "\r\n" +
		"x-fairway-bench: id=r.t.1; tenant=t; submit=5\r\n\r\nbody\r\n"
	got, err := ReadStamp(strings.NewReader(msg))
	if err != nil || got.ID != "r.t.1" || got.Submit.UnixNano() != 5 {
		t.Errorf("ReadStamp = %+v, %v", got, err)
	}
}

func TestReadStampRejects(t *testing.T) {
	for name, msg := range map[string]string{
		"no stamp":           "Subject: x\r\n\r\nX-Fairway-Bench: id=a; tenant=b; submit=1\r\n",
		"empty":              "",
		"bad submit":         "X-Fairway-Bench: id=a; tenant=b; submit=soon\r\n\r\n",
		"no id":              "X-Fairway-Bench: tenant=b; submit=1\r\n\r\n",
		"no submit":          "X-Fairway-Bench: id=a; tenant=b\r\n\r\n",
		"field without =":    "X-Fairway-Bench: id=a; tenant; submit=1\r\n\r\n",
		"space in id":        "X-Fairway-Bench: id=a b; tenant=t; submit=1\r\n\r\n",
		"header only, no LF": "Subject: x",
	} {
		if st, err := ReadStamp(strings.NewReader(msg)); err == nil {
			t.Errorf("%s: ReadStamp accepted %+v", name, st)
		}
	}
	if _, err := ReadStamp(strings.NewReader("Subject: x\r\n\r\n")); !errors.Is(err, ErrNoStamp) {
		t.Errorf("no stamp: err = %v, want ErrNoStamp", err)
	}
}

// FuzzReadStamp feeds the sink's parser whatever a relay might deliver.
func FuzzReadStamp(f *testing.F) {
	f.Add(string(BuildMessage(Stamp{ID: "r.t.1", Tenant: "t", Submit: time.Unix(0, 1)}, "a@b", "c@d", 200)))
	f.Add("X-Fairway-Bench: id=;;==; tenant=\x00; submit=-1\r\n\r\n")
	f.Add("\r\n")
	f.Fuzz(func(t *testing.T, msg string) {
		st, err := ReadStamp(strings.NewReader(msg))
		if err != nil {
			return
		}
		if st.ID == "" || !validToken(st.ID) || !validToken(st.Tenant) {
			t.Fatalf("accepted an invalid stamp %+v", st)
		}
		// What was parsed renders back to a stamp that parses the same.
		again, err := ReadStamp(strings.NewReader(st.Header() + "\r\n"))
		if err != nil || again.ID != st.ID || again.Tenant != st.Tenant || !again.Submit.Equal(st.Submit) {
			t.Fatalf("round trip of %+v: %+v, %v", st, again, err)
		}
	})
}
