package packets

// ParseFixedHeaderVersion exposes to the tests the fixed header parser of
// a Reader set to version.
func ParseFixedHeaderVersion(version byte, b []byte) (FixedHeader, int, error) {
	return parseFixedHeader(b, version == Level5)
}
