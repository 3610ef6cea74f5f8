//go:build !linux || 386

package main

import "errors"

var errLinuxOnly = errors.New("Linux only, and not on 386")

func epollPump(addr, backend string) error { return errLinuxOnly }

func rawPump(addr, backend string) error { return errLinuxOnly }
