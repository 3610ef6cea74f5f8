package config

import "go.yaml.in/yaml/v3"

// aliasBudget bounds the values the decoder visits. Aliases let a file of
// a few kilobytes stand for millions of values ("billion laughs" in width:
// a list of 200 aliases of a list of 200 aliases…), which maxDepth alone
// does not stop. A document may expand to four times its own nodes, plus
// some room for anchors merged into many places.
func aliasBudget(root *yaml.Node) int {
	return 4*countNodes(root, 0) + 10_000
}

// countNodes counts the nodes of the tree as written, not following
// aliases.
func countNodes(n *yaml.Node, depth int) int {
	if n == nil || depth > maxDepth {
		return 0
	}
	c := 1
	for _, k := range n.Content {
		c += countNodes(k, depth+1)
	}
	return c
}
