package fairq

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

func sampleRecord() *Record {
	return &Record{
		Tenant:       "acme",
		From:         "alice@acme.example",
		Domain:       "example.org",
		Recipients:   []string{"bob@example.org", "carol@example.org"},
		Created:      time.UnixMicro(1_790_000_000_000_000),
		HeldAtCreate: 90 * time.Second,
		Attempts:     3,
		NextAttempt:  time.UnixMicro(1_790_000_600_000_000),
		LastError:    "451 4.7.1 try later",
		Extra:        []byte{0, 1, 2},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	r := sampleRecord()
	got, err := decodeRecord(r.encode(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
	}
}

func TestDecodeRecordRejectsCorruption(t *testing.T) {
	good := sampleRecord().encode(nil)
	cases := map[string][]byte{
		"empty":           nil,
		"unknown version": append([]byte{9}, good[1:]...),
		"truncated":       good[:len(good)-3],
		"trailing bytes":  append(bytes.Clone(good), 'x'),
		"huge length":     {recordVersion, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"no recipients":   (&Record{Tenant: "t", Domain: "d"}).encode(nil),
		"no tenant":       (&Record{Domain: "d", Recipients: []string{"a@d"}}).encode(nil),
	}
	for name, b := range cases {
		if _, err := decodeRecord(b); !errors.Is(err, errCorruptRecord) {
			t.Errorf("%s: err = %v, want errCorruptRecord", name, err)
		}
	}
}

func TestHoldRecordRoundTrip(t *testing.T) {
	for _, h := range []holdState{
		{},
		{total: time.Hour},
		{total: time.Minute, since: time.UnixMicro(1_790_000_000_000_000)},
	} {
		got, err := decodeHold(h.encode())
		if err != nil || got.total != h.total || !got.since.Equal(h.since) {
			t.Errorf("hold %+v: got %+v, %v", h, got, err)
		}
	}
	if _, err := decodeHold([]byte{1, 0x80}); err == nil {
		t.Error("truncated hold record decoded")
	}
}

func TestHoldClock(t *testing.T) {
	t0 := time.Unix(1_790_000_000, 0)
	h := holdState{total: time.Hour, since: t0}
	if got := h.clock(t0.Add(30 * time.Minute)); got != 90*time.Minute {
		t.Errorf("held clock = %v, want 1h30m", got)
	}
	if got := (holdState{total: time.Hour}).clock(t0); got != time.Hour {
		t.Errorf("released clock = %v, want 1h", got)
	}
}

func TestMsgIDText(t *testing.T) {
	id := MsgID(0x0123456789abcdef)
	got, err := ParseMsgID(id.String())
	if err != nil || got != id {
		t.Fatalf("ParseMsgID(%q) = %v, %v", id.String(), got, err)
	}
	for _, bad := range []string{"", "123", "0123456789abcdeg", "0123456789abcdef0"} {
		if _, err := ParseMsgID(bad); err == nil {
			t.Errorf("ParseMsgID(%q) accepted", bad)
		}
	}
}

// FuzzDecodeRecord: records come back from disk, which may be corrupt; the
// decoder must never panic, and what it accepts must round-trip.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(sampleRecord().encode(nil))
	f.Add([]byte{recordVersion})
	f.Add([]byte{recordVersion, 1, 't', 0, 1, 'd', 0, 0, 0, 0, 0, 0, 1, 1, 'r'})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		again, err := decodeRecord(r.encode(nil))
		if err != nil {
			t.Fatalf("re-decode of accepted record: %v", err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("accepted record does not round-trip:\n%+v\n%+v", r, again)
		}
	})
}
