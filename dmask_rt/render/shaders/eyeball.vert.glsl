#version 330 core
// Both eyeballs in one instanced draw: the unit sphere placed by each EyeballPose.
uniform mat4 u_proj;
uniform vec3 u_center[2];
uniform mat3 u_rotation[2];   // eyeball-local -> camera frame
uniform float u_radius;
in vec3 a_dir;                // unit sphere point = eyeball-local direction
out vec3 v_dir;
out vec3 v_normal;
out vec3 v_pos;

void main() {
    v_dir = a_dir;
    v_normal = u_rotation[gl_InstanceID] * a_dir;
    v_pos = u_center[gl_InstanceID] + u_radius * v_normal;
    gl_Position = u_proj * vec4(v_pos, 1.0);
}
