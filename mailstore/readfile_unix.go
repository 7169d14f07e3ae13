//go:build unix

package mailstore

import (
	"os"
	"syscall"
)

// readMessageFile reads a whole message file with plain system calls:
// os.ReadFile's fstat and poller registration cost more than the read
// itself for the 2–4 KB files a SEARCH reads by the thousand. sizeHint is
// the expected size.
func readMessageFile(path string, sizeHint int64) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	buf := make([]byte, 0, max(sizeHint+1, 512))
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}
