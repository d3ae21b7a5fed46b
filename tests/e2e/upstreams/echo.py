"""An OpenAI-style upstream for the guard's tests, served by uvicorn: it shows what reached it.

/health answers like llama.cpp's; /v1/echo returns the method, path, query, headers and body
length it received; /v1/stream sends NDJSON lines 200 ms apart with the time each was written;
/v1/ws is a WebSocket that first sends the
headers it got, then echoes each text message; /slots is an admin route. Run: python echo.py PORT [HOST] [--access-log]
"""
import asyncio
import json
import sys
import time

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, StreamingResponse
import uvicorn

app = FastAPI()


@app.get("/health")
async def health():
    return {"status": "ok"}


@app.get("/v1/models")
async def models():
    return {"object": "list", "data": [{"id": "echo", "object": "model"}]}


@app.api_route("/v1/echo", methods=["GET", "POST", "PUT", "DELETE"])
async def echo(request: Request):
    body = await request.body()
    return JSONResponse({
        "method": request.method,
        "path": request.url.path,
        "query": request.url.query,
        "headers": {k: v for k, v in request.headers.items()},
        "body_bytes": len(body),
    })


@app.post("/v1/stream")
async def stream():
    async def lines():
        for i in range(5):
            yield json.dumps({"token": i, "sent": time.time()}) + "\n"
            await asyncio.sleep(0.2)
    return StreamingResponse(lines(), media_type="application/x-ndjson")


@app.get("/v1/slow")
async def slow():
    await asyncio.sleep(30)
    return {"late": True}


@app.websocket("/v1/ws")
async def ws(websocket: WebSocket):
    await websocket.accept()
    await websocket.send_json({"headers": dict(websocket.headers)})
    async for text in websocket.iter_text():
        await websocket.send_text("echo:" + text)


@app.api_route("/slots", methods=["GET", "POST"])
async def slots():
    return {"slots": []}


if __name__ == "__main__":
    # --access-log prints a line per request, as most servers do, for the checklist's canary.
    access_log = "--access-log" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--access-log"]
    host = args[1] if len(args) > 1 else "127.0.0.1"
    uvicorn.run(app, host=host, port=int(args[0]), log_level="info" if access_log else "warning")
