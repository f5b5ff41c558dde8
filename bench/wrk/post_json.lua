-- wrk script for bench/bench_http.py: every request is the same JSON POST.
--
-- The body is read once per wrk thread from the file named by WRK_BODY_FILE; when
-- WRK_AUTHORIZATION is set and not empty it is sent as the Authorization header.
-- Method and path: POST to the URL given on wrk's command line.

local body_file = assert(os.getenv("WRK_BODY_FILE"), "WRK_BODY_FILE is not set")
local handle = assert(io.open(body_file, "rb"))
wrk.method = "POST"
wrk.body = handle:read("*a")
handle:close()
wrk.headers["Content-Type"] = "application/json"
local authorization = os.getenv("WRK_AUTHORIZATION")
if authorization and authorization ~= "" then
   wrk.headers["Authorization"] = authorization
end
