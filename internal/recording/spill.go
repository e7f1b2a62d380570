package recording

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
)

// ErrSpoolFull is returned when the spool can hold no more audio: its
// memory cap and its disk cap are both reached (or the disk refused).
var ErrSpoolFull = errors.New("recording: spool full")

// held is encoded audio that storage has not taken yet: in memory, or
// spilled to an encrypted file. It is written once by hold and read by the
// one job goroutine that owns it; release frees it.
type held struct {
	size int64
	mem  []byte // nil when spilled
	path string // the spilled file, "" in memory
}

// buffers accounts for every held piece of the process, against the
// memory cap, and spills what does not fit to disk, sealed with AES-256-GCM
// under a key made at start and kept only in memory: a spilled file cannot
// be read by anyone who gets the disk, nor by this worker after a restart
// (which is fine: the segments already in storage are what a restart
// recovers).
type buffers struct {
	// Immutable after newBuffers.
	memCap, diskCap int64
	aead            cipher.AEAD

	// dir is created on the first spill; guarded by dirOnce.
	base    string
	dirOnce sync.Once
	dir     string
	dirErr  error

	// Shared: guarded by mu.
	mu        sync.Mutex
	memBytes  int64
	diskBytes int64

	seq     atomic.Uint64 // spilled file names
	spilled atomic.Int64  // pieces ever spilled, for stats
}

func newBuffers(memCap, diskCap int64, base string) (*buffers, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("recording: spool key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("recording: spool cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("recording: spool cipher: %w", err)
	}
	return &buffers{memCap: memCap, diskCap: diskCap, aead: aead, base: base}, nil
}

// hold takes data (the caller gives it up) and keeps it in memory, or on
// disk once the memory cap is reached.
func (b *buffers) hold(data []byte) (*held, error) {
	n := int64(len(data))
	b.mu.Lock()
	if b.memBytes+n <= b.memCap {
		b.memBytes += n
		b.mu.Unlock()
		return &held{size: n, mem: data}, nil
	}
	if b.diskBytes+n > b.diskCap {
		mem, disk := b.memBytes, b.diskBytes
		b.mu.Unlock()
		return nil, fmt.Errorf("%w: %d bytes in memory (cap %d) and %d on disk (cap %d)", ErrSpoolFull, mem, b.memCap, disk, b.diskCap)
	}
	b.diskBytes += n
	b.mu.Unlock()
	h, err := b.spill(data)
	if err != nil {
		b.mu.Lock()
		b.diskBytes -= n
		b.mu.Unlock()
		return nil, fmt.Errorf("%w: spill to disk: %w", ErrSpoolFull, err)
	}
	b.spilled.Add(1)
	return h, nil
}

// spill writes nonce || seal(data) to a new file. The file's name is the
// additional data, so a file cannot be passed off as another.
func (b *buffers) spill(data []byte) (*held, error) {
	b.dirOnce.Do(func() {
		if err := os.MkdirAll(b.base, 0o700); err != nil {
			b.dirErr = err
			return
		}
		b.dir, b.dirErr = os.MkdirTemp(b.base, "spool-")
	})
	if b.dirErr != nil {
		return nil, b.dirErr
	}
	name := strconv.FormatUint(b.seq.Add(1), 10) + ".bin"
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(data)+b.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	sealed := b.aead.Seal(nonce, nonce, data, []byte(name))
	path := filepath.Join(b.dir, name)
	if err := os.WriteFile(path, sealed, 0o600); err != nil {
		_ = os.Remove(path)
		return nil, err
	}
	return &held{size: int64(len(data)), path: path}, nil
}

// read returns the held bytes; a spilled piece is read and opened, into a
// fresh buffer the caller may keep.
func (b *buffers) read(h *held) ([]byte, error) {
	if h.path == "" {
		return h.mem, nil
	}
	sealed, err := os.ReadFile(h.path)
	if err != nil {
		return nil, fmt.Errorf("recording: read spilled audio: %w", err)
	}
	ns := b.aead.NonceSize()
	if len(sealed) < ns {
		return nil, fmt.Errorf("recording: spilled audio %s is truncated", filepath.Base(h.path))
	}
	data, err := b.aead.Open(nil, sealed[:ns], sealed[ns:], []byte(filepath.Base(h.path)))
	if err != nil {
		return nil, fmt.Errorf("recording: spilled audio %s does not authenticate: %w", filepath.Base(h.path), err)
	}
	return data, nil
}

// release frees h; safe on nil and more than once.
func (b *buffers) release(h *held) {
	if h == nil || h.size < 0 {
		return
	}
	b.mu.Lock()
	if h.path == "" {
		b.memBytes -= h.size
	} else {
		b.diskBytes -= h.size
	}
	b.mu.Unlock()
	if h.path != "" {
		_ = os.Remove(h.path)
	}
	h.mem, h.size = nil, -1
}

// usage is the bytes held in memory and on disk now.
func (b *buffers) usage() (mem, disk int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.memBytes, b.diskBytes
}

// removeDir deletes the spill directory once nothing is held.
func (b *buffers) removeDir() {
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}
