//go:build !amd64 || purego

package h1

// ctlBlocksVariants is ctl_other.go's byte loop alone.
var ctlBlocksVariants = []ctlBlocksVariant{
	{"ctlBlocks", ctlBlocks, ""},
}
