package relay

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-msgauth/dkim"

	"fairway/tenant"
)

// DKIM signing of submitted mail (RFC 6376) with the active keys of the
// domain of the From: header (tenant.DKIMSigners: one RSA-2048 and one
// Ed25519 key once both are published, RFC 8463), relaxed/relaxed.

// signedFields are the fields a signature covers when present: RFC 6376
// §5.4.1's list, the MIME fields and the list fields. Trace fields
// (Received, Return-Path) are left out: later hops add to them.
var signedFields = map[string]bool{
	"from": true, "sender": true, "reply-to": true, "subject": true, "date": true,
	"message-id": true, "to": true, "cc": true, "in-reply-to": true, "references": true,
	"mime-version": true, "content-type": true, "content-transfer-encoding": true,
	"content-id": true, "content-description": true, "content-disposition": true, "content-language": true,
	"resent-date": true, "resent-from": true, "resent-sender": true, "resent-to": true,
	"resent-cc": true, "resent-message-id": true,
	"list-id": true, "list-help": true, "list-unsubscribe": true, "list-unsubscribe-post": true,
	"list-subscribe": true, "list-post": true, "list-owner": true, "list-archive": true,
}

// dkimHeaderKeys lists the fields to sign: each signed field once per
// instance, in message order, and From once more than present, so that a
// second From: field added on the way breaks the signature (RFC 6376
// §8.15).
func dkimHeaderKeys(fields []headerField) []string {
	keys := make([]string, 0, 12)
	for _, f := range fields {
		if signedFields[strings.ToLower(f.Name)] {
			keys = append(keys, f.Name)
		}
	}
	return append(keys, "From")
}

// signChunk is how much of the message goes to each signer at a time.
const signChunk = 64 << 10

// dkimSignatures signs msg (the message as it will be queued, header and
// body) for domain with each signer and returns the DKIM-Signature fields
// to prepend, in signer order. Each dkim.Signer hashes in its own
// goroutine; writing in chunks lets them overlap.
func dkimSignatures(msg []byte, fields []headerField, domain string, signers []tenant.DKIMSigner) ([]byte, error) {
	if len(signers) == 0 {
		return nil, nil
	}
	keys := dkimHeaderKeys(fields)
	ss := make([]*dkim.Signer, 0, len(signers))
	ws := make([]io.Writer, 0, len(signers))
	closeAll := func() error {
		var errs []error
		for _, s := range ss {
			errs = append(errs, s.Close())
		}
		return errors.Join(errs...)
	}
	for _, k := range signers {
		s, err := dkim.NewSigner(&dkim.SignOptions{
			Domain:                 domain,
			Selector:               k.Selector,
			Signer:                 k.Signer,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed,
			BodyCanonicalization:   dkim.CanonicalizationRelaxed,
			HeaderKeys:             keys,
		})
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("dkim: %s selector %s: %w", domain, k.Selector, err)
		}
		ss = append(ss, s)
		ws = append(ws, s)
	}
	mw := io.MultiWriter(ws...)
	for rest := msg; len(rest) > 0; {
		n := min(len(rest), signChunk)
		if _, err := mw.Write(rest[:n]); err != nil {
			closeAll()
			return nil, fmt.Errorf("dkim: sign for %s: %w", domain, err)
		}
		rest = rest[n:]
	}
	if err := closeAll(); err != nil {
		return nil, fmt.Errorf("dkim: sign for %s: %w", domain, err)
	}
	var out bytes.Buffer
	for _, s := range ss {
		out.WriteString(s.Signature())
	}
	return out.Bytes(), nil
}
