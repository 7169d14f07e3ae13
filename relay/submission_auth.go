package relay

import (
	"bytes"

	"github.com/emersion/go-sasl"
)

// SASL servers for submission's AUTH: PLAIN (RFC 4616) and LOGIN
// (draft-murchison-sasl-login). Every error they return is an
// *smtp.SMTPError from session.refuse, so go-smtp passes it on as it is.
// The identity is always the full address; a bare local part fails in
// Directory.Authenticate like any wrong credential.

// maxSASLField bounds a username or password (argon2id hashing of a huge
// password is refused by the directory anyway).
const maxSASLField = 1024

type plainServer struct {
	ss   *subSession
	done bool
}

var _ sasl.Server = (*plainServer)(nil)

func (p *plainServer) Next(response []byte) ([]byte, bool, error) {
	if p.done {
		return nil, true, p.ss.refuse(errAuthMalformed, "")
	}
	if response == nil { // no initial response: ask for it
		return []byte{}, false, nil
	}
	p.done = true
	parts := bytes.Split(response, []byte{0})
	if len(parts) != 3 || len(parts[1]) > maxSASLField || len(parts[2]) > maxSASLField {
		return nil, true, p.ss.refuse(errAuthMalformed, "")
	}
	authz, user, pass := string(parts[0]), string(parts[1]), string(parts[2])
	if authz != "" && authz != user {
		// No proxy authorization: a user can only act as itself.
		return nil, true, p.ss.refuse(errAuthFailed, "", "tried", echoSafe(user), "authzid", echoSafe(authz))
	}
	return nil, true, p.ss.authenticate(user, pass)
}

type loginServer struct {
	ss    *subSession
	state int // 0 start, 1 asked for the username, 2 asked for the password, 3 done
	user  string
}

var _ sasl.Server = (*loginServer)(nil)

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	if len(response) > maxSASLField {
		l.state = 3
		return nil, true, l.ss.refuse(errAuthMalformed, "")
	}
	switch l.state {
	case 0:
		if response == nil {
			l.state = 1
			return []byte("Username:"), false, nil
		}
		l.user, l.state = string(response), 2 // initial response is the username
		return []byte("Password:"), false, nil
	case 1:
		l.user, l.state = string(response), 2
		return []byte("Password:"), false, nil
	case 2:
		l.state = 3
		return nil, true, l.ss.authenticate(l.user, string(response))
	}
	return nil, true, l.ss.refuse(errAuthMalformed, "")
}
