//go:build linux && !race

package h1

func raceReleaseMerge()     {}
func raceAcquire()          {}
func raceReadRange([]byte)  {}
func raceWriteRange([]byte) {}
