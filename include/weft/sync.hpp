// weft/sync.hpp - umbrella for the fiber-aware synchronization primitives (weft/sync/).
// Every primitive works from fibers (which suspend, never blocking their worker) and from
// plain threads (which block); see each header's "Memory ordering:" paragraph.
#pragma once

#include <weft/sync/barrier.hpp>
#include <weft/sync/channel.hpp>
#include <weft/sync/condition_variable.hpp>
#include <weft/sync/event.hpp>
#include <weft/sync/latch.hpp>
#include <weft/sync/mutex.hpp>
#include <weft/sync/select.hpp>
#include <weft/sync/semaphore.hpp>
#include <weft/sync/wait_group.hpp>
