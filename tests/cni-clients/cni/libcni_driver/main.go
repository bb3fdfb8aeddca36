// A minimal CNI runtime on Debian's libcni: validates a conflist, then runs
// ADD, CHECK or DEL of it for one attachment, with a private result cache.
// Usage: libcni_driver add|check|del CONFLIST PLUGIN_DIR CACHE_DIR CONTAINER_ID NETNS IFNAME
// LIBCNI_CAPABILITY_ARGS, if set, is a JSON object of capability arguments
// (e.g. {"portMappings":[...]}), passed as kubelet's CRI runtime passes a pod's
// hostPorts: libcni hands each to the plugins whose capabilities declare it.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/containernetworking/cni/libcni"
)

func main() {
	if len(os.Args) != 8 {
		fmt.Fprintln(os.Stderr, "usage: libcni_driver add|check|del CONFLIST PLUGIN_DIR CACHE_DIR CONTAINER_ID NETNS IFNAME")
		os.Exit(2)
	}
	cmd, conflist, pluginDir, cacheDir := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	rt := &libcni.RuntimeConf{ContainerID: os.Args[5], NetNS: os.Args[6], IfName: os.Args[7]}
	if caps := os.Getenv("LIBCNI_CAPABILITY_ARGS"); caps != "" {
		if err := json.Unmarshal([]byte(caps), &rt.CapabilityArgs); err != nil {
			fail(fmt.Errorf("LIBCNI_CAPABILITY_ARGS: %w", err))
		}
	}
	list, err := libcni.ConfListFromFile(conflist)
	if err != nil {
		fail(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{pluginDir}, cacheDir, nil)
	ctx := context.Background()
	if _, err := cni.ValidateNetworkList(ctx, list); err != nil {
		fail(fmt.Errorf("validate: %w", err))
	}
	switch cmd {
	case "add":
		res, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail(err)
		}
		out, _ := json.Marshal(res)
		fmt.Println(string(out))
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	default:
		fail(fmt.Errorf("unknown command %q", cmd))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "libcni_driver:", err)
	os.Exit(1)
}
