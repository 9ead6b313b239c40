#version 330 core
// u_depth 1.0 opens the depth buffer to the eyeballs inside the eye openings; 0.0 keeps
// them out (the rest of the frame is cleared to 0.0).
uniform vec3 u_color;
uniform float u_depth;
out vec4 f_color;

void main() {
    f_color = vec4(u_color, 1.0);
    gl_FragDepth = u_depth;
}
