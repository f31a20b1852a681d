// Command etcd is etcd's own server entry point, built from its published module so the
// suite needs no release download.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
