/**
 * Every type a public signature names is public: for each entry of the package (`lexicons`,
 * `lexicons/client`, `lexicons/testing`), the built declarations (dist/src/**\/*.d.ts) are read
 * with the TypeScript checker, and every named type reachable from an exported declaration
 * (parameters, results, members, constraints, heritage, `typeof` queries, `import("...")` types)
 * that lexicons itself declares must be exported by one of the entries: otherwise users meet a
 * type they cannot import (or name in their own declarations: TS2742/TS4023). Private members
 * are skipped; types of other packages (node, pino, ...) are not lexicons' to export. A generic
 * type alias (`CallArgs<T, N>`, `InputOf<S>`) is a type-level function: users name its result by
 * the alias, so it need not be exported itself and its body is not followed.
 */
import assert from 'node:assert/strict';
import { join, relative, sep } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import { ROOT } from '../helpers/server.js';

const DIST = join(ROOT, 'dist', 'src') + sep;
const ENTRIES = { lexicons: 'index.d.ts', 'lexicons/client': 'client/index.d.ts', 'lexicons/testing': 'testing/index.d.ts' } as const;

function ours(declaration: ts.Declaration): boolean {
  return declaration.getSourceFile().fileName.startsWith(DIST.split(sep).join('/'));
}

function isPrivate(node: ts.Node): boolean {
  const name = (node as ts.NamedDeclaration).name;
  if (name !== undefined && ts.isPrivateIdentifier(name)) return true;
  return ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((m) => m.kind === ts.SyntaxKind.PrivateKeyword);
}

function isTypeFunction(declaration: ts.Declaration): boolean {
  return ts.isTypeAliasDeclaration(declaration) && (declaration.typeParameters?.length ?? 0) > 0;
}

test('every type named by a public declaration is exported by an entry', () => {
  const roots = Object.values(ENTRIES).map((file) => join(DIST, file));
  const program = ts.createProgram(roots, { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, types: ['node'], noEmit: true, skipLibCheck: true, strict: true });
  const checker = program.getTypeChecker();
  const resolveAlias = (symbol: ts.Symbol): ts.Symbol => (symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol);

  const exported = new Map<ts.Symbol, string>();
  /** Exported as values (not only `export type`): their constructors are public. */
  const values = new Set<ts.Symbol>();
  for (const [entry, file] of Object.entries(ENTRIES)) {
    const source = program.getSourceFile(join(DIST, file));
    assert.ok(source, `${entry}: ${file} not built`);
    const moduleSymbol = checker.getSymbolAtLocation(source);
    assert.ok(moduleSymbol, `${entry}: not a module`);
    const names = checker.getExportsOfModule(moduleSymbol);
    assert.ok(names.length > 0, `${entry} exports nothing`);
    for (const symbol of names) {
      const target = resolveAlias(symbol);
      exported.set(target, `${entry}:${symbol.name}`);
      const typeOnly = (symbol.declarations ?? []).some((d) => ts.isExportSpecifier(d) && (d.isTypeOnly || d.parent.parent.isTypeOnly));
      if (!typeOnly) values.add(target);
    }
  }

  const problems = new Set<string>();
  const seen = new Set<ts.Symbol>();
  const queue: Array<[ts.Symbol, string]> = [...exported].map(([symbol, name]) => [symbol, name]);
  const refer = (symbol: ts.Symbol | undefined, from: string, query = false): void => {
    if (!symbol) return;
    const target = resolveAlias(symbol);
    // `typeof f` of a function, class or constant (`utils.encrypt`, `Task.Interval`): reached
    // through the value that holds it, so it need not be exported; its own signature is checked.
    if (query && target.flags & (ts.SymbolFlags.Function | ts.SymbolFlags.Class | ts.SymbolFlags.Variable)) {
      if (!seen.has(target) && (target.declarations ?? []).some(ours)) queue.push([target, `${from} > ${target.name}`]);
      return;
    }
    if (target.flags & ts.SymbolFlags.TypeParameter) return;
    const declarations = (target.declarations ?? []).filter(ours);
    if (declarations.length === 0 || declarations.every(isTypeFunction)) return;
    // A member of a public class/enum-like object (`Task.Startup`) is reached through its parent.
    const parent = (target as ts.Symbol & { parent?: ts.Symbol }).parent;
    if (parent && exported.has(resolveAlias(parent)) && !(parent.flags & ts.SymbolFlags.ValueModule)) return;
    if (!exported.has(target)) {
      const where = relative(DIST, declarations[0]!.getSourceFile().fileName);
      problems.add(`${from} names ${target.name} (${where}), which no entry exports`);
    }
    if (!seen.has(target)) queue.push([target, `${from} > ${target.name}`]);
  };
  const visit = (node: ts.Node, from: string, owner: ts.Symbol): void => {
    if (isPrivate(node)) return;
    // A class exported only as a type is made by lexicons (Database.open), never with `new`.
    if (ts.isConstructorDeclaration(node) && !values.has(owner)) return;
    if (ts.isTypeReferenceNode(node)) refer(checker.getSymbolAtLocation(node.typeName), from);
    else if (ts.isExpressionWithTypeArguments(node)) refer(checker.getSymbolAtLocation(node.expression), from);
    else if (ts.isTypeQueryNode(node)) refer(checker.getSymbolAtLocation(node.exprName), from, true);
    else if (ts.isImportTypeNode(node) && node.qualifier) refer(checker.getSymbolAtLocation(node.qualifier), from);
    ts.forEachChild(node, (child) => visit(child, from, owner));
  };
  for (let next = queue.shift(); next; next = queue.shift()) {
    const [symbol, from] = next;
    if (seen.has(symbol)) continue;
    seen.add(symbol);
    for (const declaration of (symbol.declarations ?? []).filter((d) => ours(d) && !isTypeFunction(d))) {
      // A variable's declaration is its type annotation; a module (namespace object) its members.
      visit(ts.isVariableDeclaration(declaration) && declaration.type ? declaration.type : declaration, from, symbol);
    }
  }
  assert.deepEqual([...problems].sort(), []);
});
