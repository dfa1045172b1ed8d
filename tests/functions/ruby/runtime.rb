# A custom runtime on Net::HTTP, the HTTP stack of Ruby's runtime interface client: one
# keep-alive connection, reopened by Net::HTTP when the server closes it. The test event
# protocol is the one in tests/functions/python/handler.py ("custom" calls the LambdaMeter
# shim's methods by name; "downstream" makes `calls` GETs of http://host:port/<ms>, the delayed
# server of tests/support/downstream_server.rs, on one Net::HTTP connection of its own).
require "json"
require "net/http"
begin
  require "lambda_meter" # the layer's shim (custom metrics), on RUBYLIB through the wrapper
rescue LoadError
  nil
end

class ValueError < StandardError; end
class OrderNotFound < StandardError; end

def act(event)
  case event["action"] || "ok"
  when "ok" then { "ok" => true }
  when "sleep"
    ms = event["ms"] || 50
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + ms / 1000.0
    while (left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)) > 0
      sleep(left)
    end
    { "slept_ms" => ms }
  when "fail" then raise Object.const_get(event["type"] || "RuntimeError"), "failing on purpose"
  when "big" then "x" * (event["bytes"] || 300_000)
  when "echo" then { "size" => JSON.generate(event).bytesize }
  when "custom"
    statuses = (event["calls"] || []).map { |name, *args| LambdaMeter.public_send(name, *args) }
    event["report"] ? { "statuses" => statuses, "RUBYLIB" => ENV["RUBYLIB"] } : { "calls" => statuses.size }
  when "downstream"
    got = 0
    Net::HTTP.start(event["host"], event["port"]) do |h|
      event["calls"].times { got += h.get("/#{event['ms']}").body.bytesize }
    end
    { "calls" => event["calls"], "bytes" => got }
  else raise ArgumentError, "unknown action #{event['action']}"
  end
end

host, port = ENV.fetch("AWS_LAMBDA_RUNTIME_API").split(":")
http = Net::HTTP.new(host, port.to_i)
http.read_timeout = 3600
http.keep_alive_timeout = 3600
base = "/2018-06-01/runtime/invocation"

loop do
  res = http.get("#{base}/next")
  id = res["Lambda-Runtime-Aws-Request-Id"]
  begin
    body = JSON.generate(act(JSON.parse(res.body)))
    http.post("#{base}/#{id}/response", body, "Content-Type" => "application/json")
  rescue StandardError => e
    body = JSON.generate({ "errorType" => e.class.name, "errorMessage" => e.message })
    http.post("#{base}/#{id}/error", body,
              "Content-Type" => "application/json",
              "Lambda-Runtime-Function-Error-Type" => e.class.name)
  end
end
