-- wrk script: POST the JSON body in the file named by BODY_FILE.
local file = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
-- A binary body (Triton's extension) says how long its JSON header is.
local header_length = os.getenv("BENCH_HEADER_LENGTH")
if header_length and header_length ~= "" then
  wrk.headers["Content-Type"] = "application/octet-stream"
  wrk.headers["Inference-Header-Content-Length"] = header_length
else
  wrk.headers["Content-Type"] = "application/json"
end
local key = os.getenv("BENCH_KEY")
local authorization = os.getenv("BENCH_AUTH")
if authorization and authorization ~= "" then
  wrk.headers["Authorization"] = authorization
elseif key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end

-- Non-2xx answers mean the run measured errors, not inference: report them so the harness refuses it.
function done(summary, latency, requests)
  io.write(string.format("NON2XX %d\n", summary.errors.status))
end
