-- wrk: GET the packument of every seeded package in turn (`seed-<n>`, n < $PACKAGES), the
-- $THREADS threads interleaved, so that a run of at least $PACKAGES requests touches each one.
local n = tonumber(os.getenv("PACKAGES") or "10")
local step = tonumber(os.getenv("THREADS") or "2")
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  i = id
end

request = function()
  local path = "/seed-" .. (i % n)
  i = i + step
  return wrk.format("GET", path)
end
