//go:build race

package gateway_test

// raceEnabled: the race detector is on (its instrumentation allocates).
const raceEnabled = true
