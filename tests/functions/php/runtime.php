<?php
// A PHP custom runtime, as bref and most hand-written PHP bootstraps are: a loop over the
// Runtime API with the curl extension (libcurl, loaded by PHP with RTLD_DEEPBIND), or with
// PHP's own http:// stream wrapper (file_get_contents). The test event protocol is the one
// in tests/functions/python/handler.py (ok, sleep, fail, big, echo).
//
//   php runtime.php curl     keep-alive curl handles, one for /next and one for results
//   php runtime.php stream   file_get_contents with a stream context, a connection a request

class OrderNotFound extends Exception {}

function act(array $event)
{
    switch ($event['action'] ?? 'ok') {
        case 'ok':
            return ['ok' => true];
        case 'sleep':
            $ms = $event['ms'] ?? 50;
            $end = hrtime(true) + $ms * 1000000;
            while (($left = $end - hrtime(true)) > 0) {
                usleep(intdiv($left, 1000) + 1);
            }
            return ['slept_ms' => $ms];
        case 'fail':
            $type = $event['type'] ?? 'ValueError';
            if ($type === 'OrderNotFound') {
                throw new OrderNotFound('failing on purpose');
            }
            throw new ValueError('failing on purpose');
        case 'big':
            return str_repeat('x', $event['bytes'] ?? 300000);
        case 'echo':
            return ['size' => strlen(json_encode($event))];
        default:
            throw new RuntimeException('unknown action');
    }
}

$base = 'http://' . getenv('AWS_LAMBDA_RUNTIME_API') . '/2018-06-01/runtime';
$mode = $argv[1] ?? 'curl';
$handles = [];

/** One request; returns [status, lower-cased headers, body]. */
function request(string $method, string $url, ?string $body = null, array $headers = []): array
{
    global $mode, $handles;
    if ($mode === 'stream') {
        $context = stream_context_create(['http' => [
            'method' => $method,
            'header' => implode("\r\n", array_merge(['Content-Type: application/json'], $headers)),
            'content' => $body ?? '',
            'ignore_errors' => true,
            'timeout' => 600,
        ]]);
        $out = file_get_contents($url, false, $context);
        $status = 0;
        $h = [];
        foreach ($http_response_header as $line) {
            if (preg_match('#^HTTP/\S+ (\d+)#', $line, $m)) {
                $status = (int) $m[1];
            } elseif (strpos($line, ':') !== false) {
                [$k, $v] = explode(':', $line, 2);
                $h[strtolower(trim($k))] = trim($v);
            }
        }
        return [$status, $h, $out];
    }
    $key = $method === 'GET' ? 'next' : 'result';
    $c = $handles[$key] ??= curl_init();
    $h = [];
    curl_setopt_array($c, [
        CURLOPT_URL => $url,
        CURLOPT_CUSTOMREQUEST => $method,
        CURLOPT_HTTPGET => $method === 'GET',
        CURLOPT_RETURNTRANSFER => true,
        CURLOPT_TIMEOUT => 0,
        CURLOPT_HTTPHEADER => array_merge(['Content-Type: application/json', 'Expect:'], $headers),
        CURLOPT_HEADERFUNCTION => function ($ch, $line) use (&$h) {
            if (strpos($line, ':') !== false) {
                [$k, $v] = explode(':', $line, 2);
                $h[strtolower(trim($k))] = trim($v);
            }
            return strlen($line);
        },
    ]);
    if ($method !== 'GET') {
        curl_setopt($c, CURLOPT_POSTFIELDS, $body ?? '');
    }
    $out = curl_exec($c);
    if ($out === false) {
        fwrite(STDERR, 'runtime.php: ' . curl_error($c) . "\n");
        exit(1);
    }
    return [curl_getinfo($c, CURLINFO_RESPONSE_CODE), $h, $out];
}

while (true) {
    [$status, $headers, $event] = request('GET', "$base/invocation/next");
    $id = $headers['lambda-runtime-aws-request-id'] ?? '';
    try {
        $result = json_encode(act(json_decode($event, true) ?? []));
        request('POST', "$base/invocation/$id/response", $result);
    } catch (Throwable $e) {
        $type = get_class($e);
        $error = json_encode(['errorType' => $type, 'errorMessage' => $e->getMessage()]);
        request('POST', "$base/invocation/$id/error", $error, ["Lambda-Runtime-Function-Error-Type: $type"]);
    }
}
