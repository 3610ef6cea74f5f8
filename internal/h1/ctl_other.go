//go:build !amd64 || purego

package h1

// haveCtlBlocks says that ctlBlocks is the processor's vector compare:
// not on this platform, where skipValueBytes scans words instead.
const haveCtlBlocks = false

// ctlBlocks is ctl_amd64.s's function a byte at a time.
func ctlBlocks(b []byte) int {
	n := len(b) &^ 15
	for i, c := range b[:n] {
		if c < 0x20 || c == 0x7f {
			return i
		}
	}
	return n
}
