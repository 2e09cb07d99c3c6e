// weft/weft.hpp - umbrella header: everything weft offers.
#pragma once

#include <weft/fiber.hpp>
#include <weft/scheduler.hpp>
#include <weft/stats.hpp>
#include <weft/sync.hpp>
#include <weft/io.hpp>
#include <weft/net.hpp>
#include <weft/blocking.hpp>
#include <weft/result.hpp>
#include <weft/version.hpp>   // generated (cmake/version.hpp.in)
#include <weft/task_group.hpp>
