package gateway

// lowerASCII lower-cases the ASCII letters of s. It returns s itself, without
// allocating, when there is nothing to change. Other bytes (UTF-8 included)
// are kept: case_insensitive_paths folds ASCII only, as the backends it is
// for do.
func lowerASCII(s string) string {
	i := 0
	for i < len(s) && !('A' <= s[i] && s[i] <= 'Z') {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if 'A' <= b[i] && b[i] <= 'Z' {
			b[i] += 'a' - 'A'
		}
	}
	return string(b)
}

// lowerEscaped lower-cases the ASCII letters of an escaped path, leaving
// the hex digits of its %XX escapes as they are (canonically upper case),
// so that it still decodes to lowerASCII of the decoded path.
func lowerEscaped(s string) string {
	need := false
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			i += 2
			continue
		}
		if 'A' <= s[i] && s[i] <= 'Z' {
			need = true
			break
		}
	}
	if !need {
		return s
	}
	b := []byte(s)
	for i := 0; i < len(b); i++ {
		if b[i] == '%' {
			i += 2
			continue
		}
		if 'A' <= b[i] && b[i] <= 'Z' {
			b[i] += 'a' - 'A'
		}
	}
	return string(b)
}
