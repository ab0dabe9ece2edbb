// Command etcd is the etcd server (etcdmain), pinned by ../go.mod, for the test API server.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
