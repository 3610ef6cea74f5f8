//go:build !linux

package main

import "errors"

var errLinuxOnly = errors.New("Linux only")

func epollPump(addr, backend string) error { return errLinuxOnly }

func rawPump(addr, backend string) error { return errLinuxOnly }
