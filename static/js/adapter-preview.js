// What an adapter upload holds, read in the browser before anything is sent:
// adapter_config.json and the safetensors header (the first bytes of the
// weights file), from loose files or from inside a .zip of the folder. The
// hub checks everything again on upload; this only lets people see what was
// detected (base model, rank, targets, parameter count) before publishing.

export const ADAPTER_CONFIG = "adapter_config.json";
export const SAFETENSORS_WEIGHTS = "adapter_model.safetensors";
export const PICKLED_WEIGHTS = "adapter_model.bin";
export const MODEL_CARD = "README.md";
const MAX_HEADER_BYTES = 100_000_000;
const LORA_TENSOR = /^(.+)\.lora_([AB])\.weight$/;
const PEFT_PREFIX = "base_model.model.";

// --- Reading files, loose or zipped --------------------------------------

function looseEntry(file) {
  return {
    name: file.name,
    size: file.size,
    async bytes(limit) {
      return new Uint8Array(await file.slice(0, limit ?? file.size).arrayBuffer());
    },
  };
}

async function inflatedStart(blob, limit) {
  const reader = blob.stream().pipeThrough(new DecompressionStream("deflate-raw")).getReader();
  const chunks = [];
  let total = 0;
  while (total < limit) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    total += value.length;
  }
  reader.cancel().catch(() => {});
  const out = new Uint8Array(Math.min(total, limit));
  let offset = 0;
  for (const chunk of chunks) {
    const part = chunk.subarray(0, out.length - offset);
    out.set(part, offset);
    offset += part.length;
    if (offset >= out.length) break;
  }
  return out;
}

async function view(blob, start, end) {
  return new DataView(await blob.slice(start, end).arrayBuffer());
}

// Sizes and offsets that do not fit 32 bits live in the zip64 extra field.
function zip64Values(extra, wanted) {
  let at = 0;
  while (at + 4 <= extra.byteLength) {
    const id = extra.getUint16(at, true);
    const size = extra.getUint16(at + 2, true);
    if (id === 0x0001) {
      const values = [];
      for (let i = 0; i < wanted && at + 4 + 8 * (i + 1) <= at + 4 + size; i++) {
        values.push(Number(extra.getBigUint64(at + 4 + 8 * i, true)));
      }
      return values;
    }
    at += 4 + size;
  }
  return [];
}

export async function zipEntries(zip) {
  const tailSize = Math.min(zip.size, 65_557);
  const tail = await view(zip, zip.size - tailSize, zip.size);
  let end = -1;
  for (let i = tailSize - 22; i >= 0; i--) {
    if (tail.getUint32(i, true) === 0x06054b50) { end = i; break; }
  }
  if (end < 0) throw new Error(`${zip.name} is not a zip archive`);
  let count = tail.getUint16(end + 10, true);
  let dirSize = tail.getUint32(end + 12, true);
  let dirOffset = tail.getUint32(end + 16, true);
  if (dirOffset === 0xffffffff && end >= 20 && tail.getUint32(end - 20, true) === 0x07064b50) {
    const recordAt = Number(tail.getBigUint64(end - 20 + 8, true));
    const record = await view(zip, recordAt, recordAt + 56);
    count = Number(record.getBigUint64(32, true));
    dirSize = Number(record.getBigUint64(40, true));
    dirOffset = Number(record.getBigUint64(48, true));
  }
  const dir = await view(zip, dirOffset, dirOffset + dirSize);
  const decoder = new TextDecoder();
  const entries = [];
  let at = 0;
  for (let i = 0; i < count && at + 46 <= dir.byteLength; i++) {
    if (dir.getUint32(at, true) !== 0x02014b50) break;
    const method = dir.getUint16(at + 10, true);
    let packed = dir.getUint32(at + 20, true);
    let size = dir.getUint32(at + 24, true);
    const nameLength = dir.getUint16(at + 28, true);
    const extraLength = dir.getUint16(at + 30, true);
    const commentLength = dir.getUint16(at + 32, true);
    let localAt = dir.getUint32(at + 42, true);
    const name = decoder.decode(new Uint8Array(dir.buffer, dir.byteOffset + at + 46, nameLength));
    const extra = new DataView(dir.buffer, dir.byteOffset + at + 46 + nameLength, extraLength);
    const big = zip64Values(extra, 3);
    let next = 0;
    if (size === 0xffffffff) size = big[next++];
    if (packed === 0xffffffff) packed = big[next++];
    if (localAt === 0xffffffff) localAt = big[next++];
    entries.push({ name, method, packed, size, localAt });
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries.map((entry) => ({
    name: entry.name.split("/").pop(),
    path: entry.name,
    size: entry.size,
    async bytes(limit) {
      const local = await view(zip, entry.localAt, entry.localAt + 30);
      const start = entry.localAt + 30 + local.getUint16(26, true) + local.getUint16(28, true);
      const data = zip.slice(start, start + entry.packed);
      const wanted = Math.min(limit ?? entry.size, entry.size);
      if (entry.method === 0) return new Uint8Array(await data.slice(0, wanted).arrayBuffer());
      if (entry.method === 8) return inflatedStart(data, wanted);
      throw new Error(`${entry.path} uses an unsupported zip compression (${entry.method})`);
    },
  }));
}

async function adapterEntries(files) {
  const list = Array.from(files);
  const archive = list.find((file) => file.name.toLowerCase().endsWith(".zip"));
  const entries = archive ? await zipEntries(archive) : list.map(looseEntry);
  const config = entries.find((entry) => entry.name === ADAPTER_CONFIG);
  // In a zip, the adapter is the folder that holds adapter_config.json.
  const folder = config?.path ? config.path.slice(0, config.path.length - ADAPTER_CONFIG.length) : "";
  const pick = (name) =>
    entries.find((entry) => entry.name === name && (entry.path ?? name) === folder + name) ?? null;
  return {
    archive: archive?.name ?? null,
    config: config ?? null,
    weights: pick(SAFETENSORS_WEIGHTS),
    pickled: pick(PICKLED_WEIGHTS),
    card: pick(MODEL_CARD),
  };
}

export async function readSafetensorsHeader(entry) {
  const prefix = await entry.bytes(8);
  if (prefix.length < 8) throw new Error(`${SAFETENSORS_WEIGHTS} is too short to be safetensors`);
  const length = Number(new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true));
  if (length > MAX_HEADER_BYTES || 8 + length > entry.size) {
    throw new Error(`${SAFETENSORS_WEIGHTS} is not a safetensors file`);
  }
  const raw = await entry.bytes(8 + length);
  return JSON.parse(new TextDecoder().decode(raw.subarray(8)));
}

// --- What the files say ---------------------------------------------------

export function summarizeAdapter(config, header, baseShapes = null, baseName = "the base model") {
  const problems = [];
  const rank = config.r;
  const modules = new Map();
  const dtypes = new Set();
  let parameterCount = 0;
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    parameterCount += info.shape.reduce((product, size) => product * size, 1);
    dtypes.add(info.dtype);
    const match = LORA_TENSOR.exec(name);
    if (!match) {
      problems.push(`tensor ${name} is not a LoRA weight`);
      continue;
    }
    const path = match[1].startsWith(PEFT_PREFIX) ? match[1].slice(PEFT_PREFIX.length) : match[1];
    if (!modules.has(path)) modules.set(path, {});
    modules.get(path)[match[2]] = info.shape;
  }
  for (const [path, pair] of modules) {
    const leaf = path.split(".").pop();
    if (!pair.A || !pair.B) {
      problems.push(`${path} has lora_${pair.A ? "A" : "B"} without lora_${pair.A ? "B" : "A"}`);
      continue;
    }
    const [inFeatures, outFeatures] = [pair.A[1], pair.B[0]];
    if (!baseShapes) continue;
    const shapes = baseShapes[leaf];
    if (!shapes) {
      problems.push(`${baseName} has no linear layer named ${leaf}`);
    } else if (!shapes.some(([i, o]) => i === inFeatures && o === outFeatures)) {
      const expected = shapes.map(([i, o]) => `${i} → ${o}`).join(" or ");
      problems.push(`${path} is ${inFeatures} → ${outFeatures}; ${leaf} of ${baseName} is ${expected}`);
    }
  }
  return {
    baseModel: config.base_model_name_or_path || null,
    taskType: config.task_type ?? null,
    rank,
    loraAlpha: config.lora_alpha,
    targetModules: [...new Set([...modules.keys()].map((path) => path.split(".").pop()))].sort(),
    adaptedModuleCount: modules.size,
    parameterCount,
    dtypes: [...dtypes].sort(),
    problems: [...new Set(problems)],
  };
}

export async function previewAdapter(files, baseShapesByName = {}, chosenBase = "") {
  const found = await adapterEntries(files);
  if (!found.config) throw new Error(`${ADAPTER_CONFIG} is missing`);
  const config = JSON.parse(new TextDecoder().decode(await found.config.bytes()));
  const baseName = chosenBase || config.base_model_name_or_path || "";
  const baseShapes = baseShapesByName[baseName] ?? null;
  if (!found.weights) {
    return {
      ...summarizeAdapter(config, {}, null),
      archive: found.archive,
      weightsFormat: found.pickled ? "pickle" : null,
      card: Boolean(found.card),
    };
  }
  const header = await readSafetensorsHeader(found.weights);
  return {
    ...summarizeAdapter(config, header, baseShapes, baseName),
    archive: found.archive,
    weightsFormat: "safetensors",
    card: Boolean(found.card),
  };
}
