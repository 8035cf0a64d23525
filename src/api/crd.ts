/**
 * The NotebookServer CustomResourceDefinition (apiextensions.k8s.io/v1), built from ./schema.ts.
 * crds/notebookserver.yaml is this object written by ./gen-crd.ts.
 */
import { GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION } from './types.js';
import { notebookServerSchema, printerColumns, type JSONSchemaProps, type PrinterColumn } from './schema.js';

export const CRD_NAME = `${PLURAL}.${GROUP}`;

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels?: Record<string, string> };
  spec: {
    group: string;
    scope: 'Namespaced' | 'Cluster';
    names: { plural: string; singular: string; kind: string; listKind: string; shortNames: string[]; categories?: string[] };
    versions: Array<{
      name: string;
      served: boolean;
      storage: boolean;
      schema: { openAPIV3Schema: JSONSchemaProps };
      subresources: { status: Record<string, never> };
      additionalPrinterColumns: PrinterColumn[];
    }>;
  };
}

export function notebookServerCRD(): CustomResourceDefinition {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: CRD_NAME, labels: { 'app.kubernetes.io/part-of': 'nbswarm' } },
    spec: {
      group: GROUP,
      scope: 'Namespaced',
      names: { plural: PLURAL, singular: SINGULAR, kind: KIND, listKind: `${KIND}List`, shortNames: [...SHORT_NAMES], categories: ['nbswarm'] },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          // A deep copy, so callers may mutate the CRD without touching the shared schema.
          schema: { openAPIV3Schema: structuredClone(notebookServerSchema) },
          subresources: { status: {} },
          additionalPrinterColumns: structuredClone(printerColumns),
        },
      ],
    },
  };
}
