//go:build race

package auth_test

// raceEnabled is true when the tests run under the race detector, which
// slows bcrypt about tenfold: timing bounds do not hold there.
const raceEnabled = true
