package tern

// IdleReaders returns how many reader goroutines wait for work, for tests
// that count the broker's goroutines.
func IdleReaders(b *Broker) int { return int(b.readers.idle.Load()) }
