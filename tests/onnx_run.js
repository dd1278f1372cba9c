// onnx_run.js: runs an ONNX model (cnnc --emit=onnx) in ONNX Runtime over a
// float32 .npy of HWC samples, one thread, and prints a line per sample as
// the trainer's `predict --probabilities` does: the class, then the outputs.
//
//   ORT_NODE_DIR=DIR node onnx_run.js model.onnx x.npy [--bench N]
//
// DIR holds node_modules/onnxruntime-node (npm install --ignore-scripts
// onnxruntime-node). Exit status 77 when it is not there. With --bench N it
// prints instead the median latency in microseconds of N batch-1 runs of
// the first sample, after warm-up.
'use strict';
const fs = require('fs');
const path = require('path');

let ort;
try {
    ort = require(path.join(process.env.ORT_NODE_DIR || '/nonexistent', 'node_modules',
                            'onnxruntime-node'));
} catch (e) {
    console.error('onnx_run.js: onnxruntime-node not found under ORT_NODE_DIR');
    process.exit(77);
}

function readNpy(file) {
    const b = fs.readFileSync(file);
    const hlen = b.readUInt16LE(8);
    const header = b.toString('latin1', 10, 10 + hlen);
    if (!header.includes("'<f4'"))
        throw new Error(file + ': expected float32');
    const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',')
        .map(s => s.trim()).filter(s => s.length).map(Number);
    const data = new Float32Array(b.buffer.slice(b.byteOffset + 10 + hlen,
                                                 b.byteOffset + b.length));
    return { shape, data };
}

// HWC samples -> NCHW (a vector stays as it is)
function toNchw(x) {
    const [n, ...rest] = x.shape;
    if (rest.length === 1)
        return { dims: [n, rest[0]], data: x.data };
    const [h, w, c] = rest.length === 3 ? rest : [rest[0], rest[1], 1];
    const out = new Float32Array(x.data.length);
    for (let i = 0; i < n; i++)
        for (let y = 0; y < h; y++)
            for (let xx = 0; xx < w; xx++)
                for (let k = 0; k < c; k++)
                    out[((i * c + k) * h + y) * w + xx] = x.data[((i * h + y) * w + xx) * c + k];
    return { dims: [n, c, h, w], data: out };
}

async function main() {
    const [model, npy, flag, count] = process.argv.slice(2);
    const session = await ort.InferenceSession.create(model, {
        intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential',
        graphOptimizationLevel: 'all' });
    const x = toNchw(readNpy(npy));
    if (flag === '--bench') {
        const one = x.data.length / x.dims[0];
        const dims = [1, ...x.dims.slice(1)];
        const feed = { input: new ort.Tensor('float32', x.data.slice(0, one), dims) };
        const runs = Number(count);
        for (let i = 0; i < Math.max(10, runs / 10); i++)
            await session.run(feed);
        const times = [];
        for (let i = 0; i < runs; i++) {
            const t0 = process.hrtime.bigint();
            await session.run(feed);
            times.push(Number(process.hrtime.bigint() - t0) / 1000);
        }
        times.sort((a, b) => a - b);
        console.log(times[Math.floor(runs / 2)].toFixed(1));
        return;
    }
    const result = await session.run({ input: new ort.Tensor('float32', x.data, x.dims) });
    const y = result.output;
    // a map out: NCHW back to the trainer's HWC
    const k = y.dims.slice(1).reduce((a, b) => a * b, 1);
    const data = new Float32Array(y.data.length);
    if (y.dims.length === 4) {
        const [n, c, h, w] = y.dims;
        for (let i = 0; i < n; i++)
            for (let ch = 0; ch < c; ch++)
                for (let p = 0; p < h * w; p++)
                    data[i * k + p * c + ch] = y.data[i * k + ch * h * w + p];
    } else {
        data.set(y.data);
    }
    const lines = [];
    for (let i = 0; i < y.dims[0]; i++) {
        const row = Array.from(data.slice(i * k, (i + 1) * k));
        let best = 0;
        for (let j = 1; j < k; j++)
            if (row[j] > row[best]) best = j;
        lines.push(best + ' ' + row.map(v => v.toPrecision(9)).join(' '));
    }
    console.log(lines.join('\n'));
}

main().catch(e => { console.error('onnx_run.js: ' + e.message); process.exit(1); });
