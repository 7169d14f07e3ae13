package tenant

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Admin API bearer tokens: "fwt_<id>_<secret>". Only SHA-256 of the secret
// is stored; the secret is 256 random bits, so a slow hash would add nothing.

// Token describes an admin token (never its secret).
type Token struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Hash    string    `json:"hash,omitempty"`
}

// CreateToken makes a token and returns it whole; it cannot be shown again.
func (d *Directory) CreateToken(name string) (string, Token, error) {
	if len(name) > 100 {
		return "", Token{}, fmt.Errorf("%w: token name longer than 100 bytes", ErrInvalid)
	}
	idb := make([]byte, 6)
	secret := make([]byte, 32)
	if _, err := rand.Read(idb); err != nil {
		return "", Token{}, err
	}
	if _, err := rand.Read(secret); err != nil {
		return "", Token{}, err
	}
	sum := sha256.Sum256(secret)
	t := Token{ID: hex.EncodeToString(idb), Name: name, Created: d.clock.Now().UTC(), Hash: hex.EncodeToString(sum[:])}
	err := d.update(func(tx *txn) error { return tx.set(pfxToken+t.ID, &t) })
	if err != nil {
		return "", Token{}, err
	}
	d.log.Info("admin token created", "token", t.ID, "name", name)
	t.Hash = ""
	return "fwt_" + t.ID + "_" + base64.RawURLEncoding.EncodeToString(secret), t, nil
}

// VerifyToken reports whether a bearer token is valid.
func (d *Directory) VerifyToken(token string) bool {
	rest, ok := strings.CutPrefix(token, "fwt_")
	id, enc, ok2 := strings.Cut(rest, "_")
	if !ok || !ok2 || len(id) != 12 || len(enc) > 64 {
		return false
	}
	secret, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return false
	}
	v, closer, err := d.db.Get([]byte(pfxToken + id))
	if err != nil {
		return false
	}
	var t Token
	err = json.Unmarshal(v, &t)
	closer.Close()
	if err != nil {
		return false
	}
	want, err := hex.DecodeString(t.Hash)
	sum := sha256.Sum256(secret)
	return err == nil && subtle.ConstantTimeCompare(sum[:], want) == 1
}

// Tokens lists admin tokens.
func (d *Directory) Tokens() ([]Token, error) {
	iter, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte(pfxToken), UpperBound: []byte("T\x01")})
	if err != nil {
		return nil, err
	}
	defer iter.Close()
	var out []Token
	for valid := iter.First(); valid; valid = iter.Next() {
		var t Token
		if err := json.Unmarshal(iter.Value(), &t); err != nil {
			return nil, fmt.Errorf("token record %q: %w", iter.Key(), err)
		}
		t.Hash = ""
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, iter.Error()
}

// RevokeToken deletes a token by ID.
func (d *Directory) RevokeToken(id string) error {
	return d.update(func(tx *txn) error {
		if _, closer, err := d.db.Get([]byte(pfxToken + id)); err != nil {
			return fmt.Errorf("token %s: %w", id, ErrNotFound)
		} else {
			closer.Close()
		}
		d.log.Info("admin token revoked", "token", id)
		return tx.del(pfxToken + id)
	})
}
