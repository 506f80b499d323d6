package fattr

// Listing is one directory listing for READDIR and READDIRPLUS: the
// entries in cookie order (entry i's cookie is i+2; "." is 0, ".." 1).
type Listing struct {
	Names    []string
	Verifier uint64 // the cookie verifier naming Names
	Parent   uint64 // fileid of ".."
	// Entry returns name's handle and fills a with its attributes, as
	// LOOKUP does; false: gone meanwhile.
	Entry func(name string, a *Attr) ([]byte, bool)
	// FileID is name's fileid (READDIR); false: gone meanwhile.
	FileID func(name string) (uint64, bool)
}
