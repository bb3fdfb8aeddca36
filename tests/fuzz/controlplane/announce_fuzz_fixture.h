// Fixed table for the underlay announcement's fuzz target and its seed
// generator: member 2 of fuzz_fixture.h's table answers, so a newer record
// of node 1 or 2 reaches the merge path.
#pragma once

#include "fuzz_fixture.h"
#include "meshd/controlplane/announce.h"
#include "meshd/controlplane/sync_engine.h"

namespace meshd::controlplane::fuzzing {

inline SyncEngine announce_engine() { return SyncEngine(fixed_key(2).public_key(), fixed_table()); }

}  // namespace meshd::controlplane::fuzzing
