-- wrk script for loadtest/bench.py: every request carries a client id header from a rotating
-- set of 1000 ids, so a proxy's sticky 90/10 split spreads the load as real clients would.
--
--   wrk -t1 -c50 -d10s --latency -s loadtest/clients.lua http://127.0.0.1:8080/users/1 -- X-Client-Id
--
-- Two more arguments add one fixed header to every request (name, value): the field list of
-- the "fields" variant, -- X-Client-Id X-Fields 'user(id,name,role),items(id)'.
--
-- The requests are formatted once per thread in init(), so wrk's own cost per request stays
-- that of sending a prepared string, the same for every target.

local count = 1000
local requests = {}
local n = 0

function init(args)
  local header = args[1] or "X-Client-Id"
  for i = 1, count do
    local headers = { [header] = string.format("client-%04d", i) }
    if args[2] and args[3] then
      headers[args[2]] = args[3]
    end
    requests[i] = wrk.format(nil, nil, headers)
  end
end

function request()
  n = n % count + 1
  return requests[n]
end
