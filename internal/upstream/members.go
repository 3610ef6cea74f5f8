package upstream

// SetDynamic sets the instances that join the pool's static ones at run
// time (registered instances), replacing those set before. Requests that
// already picked an instance keep it; new ones choose among the new list.
// It is safe to call while the pool serves.
//
// This is the smallest change that lets the registry feed a pool; the
// weights, zones and health of registered instances are not used here.
func (p *Pool) SetDynamic(dynamic []*Instance) {
	all := make([]*Instance, 0, len(p.instances)+len(dynamic))
	all = append(all, p.instances...)
	all = append(all, dynamic...)
	p.members.Store(&all)
}

func (p *Pool) current() []*Instance {
	if m := p.members.Load(); m != nil {
		return *m
	}
	return p.instances
}
