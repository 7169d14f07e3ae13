package tenant

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"runtime"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Password hashing: argon2id with OWASP's recommended floor (19 MiB, 2
// passes, 1 lane). Memory per hash is what bounds concurrent logins, so
// hashing runs at most 2×GOMAXPROCS at once (≈40 MiB per core).
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	argonSaltLen   = 16

	minPasswordLen = 12
	maxPasswordLen = 1024
)

var hashSlots = make(chan struct{}, 2*runtime.GOMAXPROCS(0))

// checkPassword refuses weak passwords with a message a user can act on.
func checkPassword(addr, password string) error {
	if n := utf8.RuneCountInString(password); n < minPasswordLen {
		return fmt.Errorf("%w: password too short: %d characters, at least %d", ErrInvalid, n, minPasswordLen)
	}
	if len(password) > maxPasswordLen {
		return fmt.Errorf("%w: password longer than %d bytes", ErrInvalid, maxPasswordLen)
	}
	p := strings.ToLower(password)
	if p == addr || p == addr[:strings.LastIndexByte(addr, '@')] {
		return fmt.Errorf("%w: password must not be the address or its local part", ErrInvalid)
	}
	return nil
}

func argonKey(password string, salt []byte, t, m uint32, p uint8) []byte {
	hashSlots <- struct{}{}
	defer func() { <-hashSlots }()
	return argon2.IDKey([]byte(password), salt, t, m, p, argonKeyLen)
}

// hashPassword returns the PHC string form: $argon2id$v=19$m=…,t=…,p=…$salt$key.
func hashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := argonKey(password, salt, argonTime, argonMemoryKiB, argonThreads)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// verifyPassword checks password against a PHC hash, with the parameters the
// hash was made with (so they can be raised later without a reset).
func verifyPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil ||
		m < 8*1024 || m > 1<<20 || t < 1 || t > 16 || p < 1 || p > 16 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(key) != argonKeyLen {
		return false
	}
	got := argonKey(password, salt, t, m, p)
	return subtle.ConstantTimeCompare(got, key) == 1
}

// dummyHash is verified against when the user does not exist, so a failed
// login costs the same whether or not the address is known.
var dummyHash, _ = hashPassword("fairway dummy password for timing")

// Identity is an authenticated user.
type Identity struct {
	Address string // normalized full address
	Tenant  string
}

// Authenticate checks a full address and password. Any failure (bare local
// part, unknown address, wrong password, removed domain) returns ErrAuth
// after the same argon2id work.
func (d *Directory) Authenticate(address, password string) (Identity, error) {
	addr, err := NormalizeAddress(address)
	if err != nil || len(password) > maxPasswordLen {
		verifyPassword(dummyHash, password)
		return Identity{}, ErrAuth
	}
	d.mu.RLock()
	m := d.st.mailboxes[addr]
	d.mu.RUnlock()
	if m == nil {
		verifyPassword(dummyHash, password)
		return Identity{}, ErrAuth
	}
	if !verifyPassword(m.Hash, password) {
		return Identity{}, ErrAuth
	}
	// The mailbox may have been removed while the hash ran: check again.
	d.mu.RLock()
	cur := d.st.mailboxes[addr]
	d.mu.RUnlock()
	if cur == nil || cur.Hash != m.Hash {
		return Identity{}, ErrAuth
	}
	return Identity{Address: addr, Tenant: m.Tenant}, nil
}
